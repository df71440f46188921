package main

import (
	"bytes"
	"context"
	"database/sql"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/pgtest"
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
	rows, err := db.Query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	return got
}

var ourTables = []string{"api_keys", "audit_log", "tenant_idp_config", "tenant_products", "tenant_projects", "tenants"}

func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary against PostgreSQL")
	}
	url := pgtest.URL(t)
	db := pgtest.Open(t, url)
	bin := build(t)
	dev := []string{"DATABASE_URL=" + url, "APP_ENV=dev"}

	steps := []struct {
		args       []string
		wantOut    string
		wantTables []string
	}{
		{[]string{"up"}, "applied 20261123000003", ourTables},
		{[]string{"version"}, "current: 20261123000003", ourTables},
		{[]string{"down-all"}, "current: none", []string{}},
		{[]string{"status"}, "pending: 20261123000001 20261123000002 20261123000003", []string{}},
		{[]string{"up"}, "applied 20261123000001", ourTables},
		{[]string{"up"}, "already at the latest version", ourTables},
	}
	for _, s := range steps {
		out, err := exe(t, bin, dev, s.args...)
		if err != nil {
			t.Fatalf("migrate %v: %v\n%s", s.args, err, out)
		}
		if !strings.Contains(out, s.wantOut) {
			t.Errorf("migrate %v output:\n%s\nwant it to contain %q", s.args, out, s.wantOut)
		}
		if got := tables(t, db); !slices.Equal(got, s.wantTables) {
			t.Errorf("tables after migrate %v = %v, want %v", s.args, got, s.wantTables)
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
		if got := tables(t, db); !slices.Equal(got, ourTables) {
			t.Errorf("tables after a refused migrate %v = %v, want %v", tc.args, got, ourTables)
		}
	}
}

// TestRunDown covers down N in-process through run.
func TestRunDown(t *testing.T) {
	url := pgtest.MigratedURL(t)
	db := pgtest.Open(t, url)
	env := map[string]string{"DATABASE_URL": url, "APP_ENV": "stage"}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"down", "2"}, func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatalf("run down 2: %v", err)
	}
	if got, want := out.String(), "current: 20261123000001"; !strings.Contains(got, want) {
		t.Errorf("run down 2 output %q, want it to contain %q", got, want)
	}
	if got := tables(t, db); len(got) != 0 {
		t.Errorf("tables after down 2 = %v, want none", got)
	}
}
