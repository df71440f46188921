package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	testCreated = 1700000000
	baseDir     = "../../deploy/image"
)

var testLabels = map[string]string{
	"org.opencontainers.image.source":   "https://github.com/platform/tenant-registry",
	"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
	"org.opencontainers.image.version":  "v1.2.3",
}

func labelArgs() []string {
	var args []string
	for k, v := range testLabels {
		args = append(args, "-label", k+"="+v)
	}
	return args
}

// TestServerImage builds the server's image twice, checks both are one
// image, reads it back, runs its entrypoint and asks it /healthz.
func TestServerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/server (go build)")
	}
	ctx := context.Background()
	var tars, digests [2]string
	var stdout0 string
	var sums [2][sha256.Size]byte
	for i := range tars {
		tars[i] = filepath.Join(t.TempDir(), "tenant-registry.tar")
		args := append([]string{
			"-package", "github.com/platform/tenant-registry/cmd/server",
			"-tag", "tenant-registry:test", "-out", tars[i], "-base", baseDir,
			"-created", strconv.Itoa(testCreated),
		}, labelArgs()...)
		var stdout bytes.Buffer
		if err := run(ctx, args, &stdout); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if i == 0 {
			stdout0 = stdout.String()
		}
		d, err := os.ReadFile(strings.TrimSuffix(tars[i], ".tar") + ".digest")
		if err != nil {
			t.Fatal(err)
		}
		digests[i] = strings.TrimSpace(string(d))
		if !strings.Contains(stdout.String(), digests[i]) {
			t.Errorf("stdout %q does not name the digest %s", stdout.String(), digests[i])
		}
		b, err := os.ReadFile(tars[i])
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(b)
		t.Logf("build %d: %s", i, digests[i])
	}
	if got, want := digests[1], digests[0]; got != want || !strings.HasPrefix(got, "sha256:") {
		t.Fatalf("second build's digest = %s, want the first's %s", got, want)
	}
	if sums[0] != sums[1] {
		t.Errorf("the two tarballs differ byte for byte")
	}

	img, err := tarball.ImageFromPath(tars[0], nil)
	if err != nil {
		t.Fatalf("tarball.ImageFromPath: %v", err)
	}
	// The tarball (docker save format) keeps the config and the layers, not
	// the manifest: the image id read back (the config's digest, which
	// names every layer's diff id) is the built one.
	if got, err := img.ConfigName(); err != nil || got.String() != printedID(t, stdout0) {
		t.Errorf("image id read back = %v, %v; want %s", got, err, printedID(t, stdout0))
	}
	checkConfig(t, img, "/usr/local/bin/tenant-registry", "tenant-registry")
	checkLayers(t, img)

	bin := extract(t, img, "/usr/local/bin/tenant-registry")
	healthz(t, bin)
}

// TestBuildReproducible builds one image from the same inputs twice, the
// inputs' file times changed in between, and from other inputs.
func TestBuildReproducible(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "app")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := spec{
		base: baseDir, caCerts: filepath.Join(baseDir, "etc", "group"), binary: bin,
		entrypoint: "/usr/local/bin/app", arch: "amd64",
		created: time.Unix(testCreated, 0).UTC(), labels: map[string]string{labelTitle: "app"},
	}
	digest := func(s spec) v1.Hash {
		t.Helper()
		img, err := build(s)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	want := digest(s)
	if err := os.Chtimes(bin, time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := digest(s); got != want {
		t.Errorf("after touching the binary: digest %s, want %s", got, want)
	}
	later := s
	later.created = s.created.Add(time.Second)
	labelled := s
	labelled.labels = map[string]string{labelTitle: "other"}
	for _, c := range []struct {
		name string
		s    spec
	}{{"other created time", later}, {"other labels", labelled}} {
		if got := digest(c.s); got == want {
			t.Errorf("%s: same digest %s", c.name, got)
		}
	}
	img, err := build(s)
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, img, "/usr/local/bin/app", "app")
	checkLayers(t, img)
}

// printedID is the image id run printed ("… id sha256:…").
func printedID(t *testing.T, stdout string) string {
	t.Helper()
	_, id, ok := strings.Cut(strings.TrimSpace(stdout), " id ")
	if !ok {
		t.Fatalf("stdout %q names no image id", stdout)
	}
	return id
}

func checkConfig(t *testing.T, img v1.Image, entrypoint, title string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	uid, gid, _ := strings.Cut(cf.Config.User, ":")
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"User uid numeric non-root", isNonRoot(uid), true},
		{"User gid numeric non-root", isNonRoot(gid), true},
		{"User", cf.Config.User, "65532:65532"},
		{"Entrypoint", strings.Join(cf.Config.Entrypoint, " "), entrypoint},
		{"WorkingDir", cf.Config.WorkingDir, "/"},
		{"SSL_CERT_FILE", slices.Contains(cf.Config.Env, "SSL_CERT_FILE="+caPath), true},
		{"OS", cf.OS, "linux"},
		{"Created", cf.Created.Unix(), int64(testCreated)},
		{"title label", cf.Config.Labels[labelTitle], title},
	} {
		if c.got != c.want {
			t.Errorf("config %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if title == "tenant-registry" {
		for k, want := range testLabels {
			if got := cf.Config.Labels[k]; got != want {
				t.Errorf("label %s = %q, want %q", k, got, want)
			}
		}
	}
	for _, h := range cf.History {
		if h.Created.Unix() != testCreated {
			t.Errorf("history %q created %v, want %d", h.CreatedBy, h.Created, testCreated)
		}
	}
}

func isNonRoot(id string) bool {
	n, err := strconv.Atoi(id)
	return err == nil && n > 0
}

// checkLayers reads every layer's tar: sorted names, one mtime, root owner
// (the home directory apart), the files the base must hold.
func checkLayers(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(layers), 2; got != want {
		t.Fatalf("%d layers, want %d", got, want)
	}
	seen := map[string]bool{}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		var names []string
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer %d: %v", i, err)
			}
			names = append(names, h.Name)
			seen[strings.TrimSuffix(h.Name, "/")] = true
			if got := h.ModTime.Unix(); got != testCreated {
				t.Errorf("layer %d %s: mtime %d, want %d", i, h.Name, got, testCreated)
			}
			wantID := 0
			if h.Name == home+"/" {
				wantID = uid
			}
			if h.Uid != wantID || h.Gid != wantID || h.Uname != "" || h.Gname != "" {
				t.Errorf("layer %d %s: owner %d:%d (%q:%q), want %d:%d", i, h.Name, h.Uid, h.Gid, h.Uname, h.Gname, wantID, wantID)
			}
		}
		rc.Close()
		if !slices.IsSorted(names) {
			t.Errorf("layer %d entries not sorted: %v", i, names)
		}
	}
	for _, f := range []string{"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt", "tmp", home} {
		if !seen[f] {
			t.Errorf("image lacks %s", f)
		}
	}
}

// extract copies the file at p out of the image's flattened file system.
func extract(t *testing.T, img v1.Image, p string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the image: %v", p, err)
		}
		if h.Name != strings.TrimPrefix(p, "/") {
			continue
		}
		if h.Mode&0o111 == 0 {
			t.Errorf("%s mode %o is not executable", p, h.Mode)
		}
		out := filepath.Join(t.TempDir(), filepath.Base(p))
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// healthz runs bin on the embedded store and wants 200 from GET /healthz.
func healthz(t *testing.T, bin string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env = []string{"APP_ENV=dev", "ADDR=" + addr}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("server output:\n%s", logs.String())
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			res.Body.Close()
			if got, want := res.StatusCode, http.StatusOK; got != want {
				t.Fatalf("GET /healthz = %d, want %d", got, want)
			}
			t.Logf("GET /healthz of the image's binary: %d", res.StatusCode)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /healthz: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
