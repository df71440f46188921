package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// build compiles the command once per test into a temp dir.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "migrate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func exe(t *testing.T, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func tables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	return storetest.Strings(t, context.Background(), db, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)
}

var ourTables = []string{"api_keys", "audit_log", "tenant_idp_config", "tenant_products", "tenant_projects", "tenants"}

// versions lists the embedded migration versions in order.
func versions(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(names) < 2 {
		t.Fatalf("embedded migrations: %v %v", names, err)
	}
	var vs []string
	for _, n := range names {
		v, _, _ := strings.Cut(n, "_")
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

// hasTables reports whether got holds all of ourTables (want true) or none
// of our tables at all (want false).
func hasTables(got []string, want bool) bool {
	if !want {
		return len(got) == 0
	}
	for _, w := range ourTables {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary against PostgreSQL")
	}
	url := pgtest.URL(t)
	db := pgtest.Open(t, url)
	bin := build(t)
	dev := []string{"DATABASE_URL=" + url, "APP_ENV=dev"}

	all := versions(t)
	first, last := all[0], all[len(all)-1]
	steps := []struct {
		args       []string
		wantOut    string
		wantTables bool
	}{
		{[]string{"up"}, "applied " + last, true},
		{[]string{"version"}, "current: " + last, true},
		{[]string{"down-all"}, "current: none", false},
		{[]string{"status"}, "pending: " + strings.Join(all, " "), false},
		{[]string{"up"}, "applied " + first, true},
		{[]string{"up"}, "already at the latest version", true},
	}
	for _, s := range steps {
		out, err := exe(t, bin, dev, s.args...)
		if err != nil {
			t.Fatalf("migrate %v: %v\n%s", s.args, err, out)
		}
		if !strings.Contains(out, s.wantOut) {
			t.Errorf("migrate %v output:\n%s\nwant it to contain %q", s.args, out, s.wantOut)
		}
		if got := tables(t, db); !hasTables(got, s.wantTables) {
			t.Errorf("tables after migrate %v = %v, want ours present: %v", s.args, got, s.wantTables)
		}
	}

	// Refusals and bad configuration: non-zero exit, a message, no change.
	for _, tc := range []struct {
		env     []string
		args    []string
		wantErr string
	}{
		{[]string{"DATABASE_URL=" + url, "APP_ENV=prod"}, []string{"down-all"}, "down-all refused: APP_ENV=prod"},
		{[]string{"DATABASE_URL=" + url, "APP_ENV=prod"}, []string{"down", "2"}, "down refused: APP_ENV=prod"},
		{[]string{"APP_ENV=dev"}, []string{"up"}, "DATABASE_URL is not set"},
		{[]string{"DATABASE_URL=::nope", "APP_ENV=dev"}, []string{"up"}, "DATABASE_URL is invalid"},
		{[]string{"DATABASE_URL=" + url, "APP_ENV=qa"}, []string{"up"}, "APP_ENV must be"},
		{dev, []string{"down", "zero"}, "N must be a positive number"},
		{dev, []string{"sideways"}, `unknown command "sideways"`},
	} {
		out, err := exe(t, bin, tc.env, tc.args...)
		if err == nil || !strings.Contains(out, tc.wantErr) {
			t.Errorf("migrate %v with %v: err = %v, output:\n%s\nwant a failure saying %q", tc.args, tc.env, err, out, tc.wantErr)
		}
		if got := tables(t, db); !hasTables(got, true) {
			t.Errorf("tables after a refused migrate %v = %v, want all of %v", tc.args, got, ourTables)
		}
	}
}

// TestRunDown covers down N in-process through run.
func TestRunDown(t *testing.T) {
	url := pgtest.MigratedURL(t)
	db := pgtest.Open(t, url)
	env := map[string]string{"DATABASE_URL": url, "APP_ENV": "stage"}
	var out, errOut bytes.Buffer
	all := versions(t)
	n := fmt.Sprint(len(all) - 1) // down to the first version: the enum types only
	if err := run(context.Background(), []string{"down", n}, func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatalf("run down %s: %v", n, err)
	}
	if got, want := out.String(), "current: "+all[0]; !strings.Contains(got, want) {
		t.Errorf("run down %s output %q, want it to contain %q", n, got, want)
	}
	if got := tables(t, db); len(got) != 0 {
		t.Errorf("tables after down %s = %v, want none", n, got)
	}
}

// TestCreateNoChanges: the committed directory matches the Ent schemas, so
// create writes nothing.
func TestCreateNoChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	dev := pgtest.URL(t)
	dir := t.TempDir()
	entries, err := migrations.FS.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := migrations.FS.ReadFile(e.Name())
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"DEV_DATABASE_URL": dev}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	if err := run(context.Background(), []string{"create", "-dir", dir, "nothing"}, getenv, &out, &out); err != nil {
		t.Fatalf("create: %v\n%s", err, out.String())
	}
	if got, want := strings.TrimSpace(out.String()), "no changes"; got != want {
		t.Errorf("create output %q, want %q", got, want)
	}
}
