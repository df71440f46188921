//go:build unix

// Package browsertest proves the browser portal's path for real: the
// TypeScript clients generated from the protos (gen/ts), a small page
// (web/portal-test) bundled with esbuild and served from another origin than
// the API, Connect-Web with a bearer token from an OIDC issuer, CORS, all in
// Debian's headless Chromium.
//
// It needs web/node_modules (`npm ci --prefix web`) and chromium
// (`apt-get install chromium`): without them it skips, or fails when CI is
// set. -short skips it.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/app"
	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/evidence"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/store"
)

const (
	acmeID   = "00000000-0000-0000-0000-000000000001"
	audience = "tenant-registry"
	// chromiumTimeout bounds one Chromium run; the page itself has a
	// virtual time budget of 5 s.
	chromiumTimeout = 60 * time.Second
)

// pageResult is what web/portal-test/main.ts writes into <pre id="result">.
type pageResult struct {
	Slug             string `json:"slug"`
	Status           string `json:"status"`
	KeyPrefix        string `json:"keyPrefix"`
	KeyLength        int    `json:"keyLength"`
	KeyMatchesPrefix bool   `json:"keyMatchesPrefix"`
	Error            string `json:"error"`
	Code             string `json:"code"`
	Step             string `json:"step"`
}

func TestPortalInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no browser test")
	}
	root := repoRoot(t)
	esbuild := filepath.Join(root, "web", "node_modules", ".bin", "esbuild")
	if _, err := os.Stat(esbuild); err != nil {
		pgtest.Unavailable(t, "the browser test needs web/node_modules (run `npm ci --prefix web`)")
	}
	chromium := findChromium()
	if chromium == "" {
		pgtest.Unavailable(t, "the browser test needs chromium (run `apt-get install chromium`)")
	}

	site := buildPage(t, root, esbuild)
	is := oidctest.New()
	t.Cleanup(is.Close)
	page := httptest.NewServer(http.FileServer(http.Dir(site)))
	t.Cleanup(page.Close)
	// The same page from an origin the API does not allow.
	foreign := httptest.NewServer(http.FileServer(http.Dir(site)))
	t.Cleanup(foreign.Close)
	api := startAPI(t, is.URL(), page.URL)

	admin := is.Token(oidctest.Claims{
		Subject: "browser-admin", Name: "Browser Admin", TenantID: acmeID,
		Audience: []string{audience}, Roles: []string{"IT_ADMIN"},
	})
	// Signed by a key the issuer does not publish.
	forged := is.Token(oidctest.Claims{
		Subject: "browser-admin", TenantID: acmeID,
		Audience: []string{audience}, Roles: []string{"IT_ADMIN"}, SignWith: oidctest.NewKey(),
	})

	t.Run("allowed origin with an IT_ADMIN token", func(t *testing.T) {
		dom := dumpDOM(t, chromium, pageURL(page.URL, api.srv.URL, admin))
		got := result(t, dom)
		if got.Error != "" {
			t.Fatalf("page reports an error: %+v", got)
		}
		if got.Slug != "acme" || got.Status != "active" {
			t.Errorf("tenant = slug %q status %q, want acme active", got.Slug, got.Status)
		}
		if !strings.HasPrefix(got.KeyPrefix, apikey.KeyPrefix) || len(got.KeyPrefix) <= len(apikey.KeyPrefix) {
			t.Errorf("key prefix = %q, want %q and more", got.KeyPrefix, apikey.KeyPrefix)
		}
		if got.KeyLength != len(apikey.KeyPrefix)+43 || !got.KeyMatchesPrefix {
			t.Errorf("created key: length %d (want %d), starts with its prefix: %v", got.KeyLength, len(apikey.KeyPrefix)+43, got.KeyMatchesPrefix)
		}
		if secret := regexp.MustCompile(`trk_[A-Za-z0-9_-]{20,}`).FindString(dom); secret != "" {
			t.Errorf("the page shows the secret key %q", secret)
		}
		// CORS was exercised for real: a preflight, then the calls.
		for _, want := range []string{
			"OPTIONS /tenantregistry.v1.TenantService/GetTenantBySlug",
			"POST /tenantregistry.v1.TenantService/GetTenantBySlug",
			"OPTIONS /tenantregistry.v1.ApiKeyService/CreateApiKey",
			"POST /tenantregistry.v1.ApiKeyService/CreateApiKey",
		} {
			if !api.saw(page.URL, want) {
				t.Errorf("API did not see %q from %s; saw %v", want, page.URL, api.requests())
			}
		}
	})

	t.Run("disallowed origin fails to fetch", func(t *testing.T) {
		got := result(t, dumpDOM(t, chromium, pageURL(foreign.URL, api.srv.URL, admin)))
		if got.Step != "GetTenantBySlug" || !strings.Contains(got.Error, "Failed to fetch") {
			t.Errorf("page result = %+v, want GetTenantBySlug failing with \"Failed to fetch\"", got)
		}
		// The browser stopped at the preflight: no call reached the API.
		for _, r := range api.requests() {
			if strings.HasPrefix(r, foreign.URL+" ") && !strings.Contains(r, " OPTIONS ") {
				t.Errorf("a call from the disallowed origin reached the API: %s", r)
			}
		}
	})

	t.Run("allowed origin with an invalid token", func(t *testing.T) {
		got := result(t, dumpDOM(t, chromium, pageURL(page.URL, api.srv.URL, forged)))
		if got.Code != "unauthenticated" || got.Step != "GetTenantBySlug" {
			t.Errorf("page result = %+v, want GetTenantBySlug unauthenticated", got)
		}
	})

	if t.Failed() {
		t.Logf("API log:\n%s", api.logs.String())
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", dir, err)
	}
	return dir
}

// findChromium returns $CHROMIUM, or the first Chromium on PATH.
func findChromium() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// buildPage bundles web/portal-test/main.ts with esbuild and returns a
// directory holding index.html and main.js.
func buildPage(t *testing.T, root, esbuild string) string {
	t.Helper()
	out := t.TempDir()
	web := filepath.Join(root, "web")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, esbuild, filepath.Join("portal-test", "main.ts"),
		"--bundle", "--format=iife", "--target=es2020", "--log-level=warning",
		"--outfile="+filepath.Join(out, "main.js"))
	cmd.Dir = web
	// gen/ts lies outside web/: its imports resolve through NODE_PATH.
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(web, "node_modules"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, b)
	}
	index, err := os.ReadFile(filepath.Join(web, "portal-test", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "index.html"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func pageURL(pageBase, apiBase, token string) string {
	return pageBase + "/index.html?" + url.Values{"api": {apiBase}, "token": {token}}.Encode()
}

// apiServer is the service on the embedded SQLite store with the dev seed,
// bearer tokens verified against the test issuer (no anonymous callers) and
// CORS for one origin. It records every request it sees by origin.
type apiServer struct {
	srv  *httptest.Server
	logs *logtest.Buffer
	mu   sync.Mutex
	seen []string // "origin METHOD path"
}

// signingKeyFile writes a new audit signing key (AUDIT_SIGNING_KEY_FILE,
// which stage requires) and returns its path.
func signingKeyFile(t *testing.T) string {
	k, err := evidence.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(path, k.PrivateKeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startAPI(t *testing.T, issuer, allowedOrigin string) *apiServer {
	t.Helper()
	ctx := context.Background()
	a := &apiServer{logs: &logtest.Buffer{}}
	log := slog.New(slog.NewJSONHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.OpenSQLite(ctx, "", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Wired by app.New as cmd/server wires it, in stage: tokens from the
	// issuer, no anonymous caller, the portal's origin allowed.
	svc, err := app.New(ctx, app.Deps{
		Config: config.Config{
			Env: config.Stage, KeycloakIssuer: issuer, KeycloakAudience: audience,
			CORSAllowedOrigins:  []string{allowedOrigin},
			APIKeySecret:        "browsertest-secret-0123456789abcdef",
			AuditSigningKeyFile: signingKeyFile(t),
			IDPSecretKey:        []byte("browsertest-idp-key-0123456789ab"),
		},
		Store: st, Logger: log, Clock: clock.System,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Tenants.SeedDev(ctx); err != nil {
		t.Fatal(err)
	}
	h := svc.Handler
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Header.Get("Origin")+" "+r.Method+" "+r.URL.Path)
		a.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *apiServer) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

func (a *apiServer) saw(origin, methodPath string) bool {
	for _, r := range a.requests() {
		if r == origin+" "+methodPath {
			return true
		}
	}
	return false
}

// dumpDOM loads url in headless Chromium and returns the DOM once the page
// has settled (virtual time: pending fetches hold the clock).
func dumpDOM(t *testing.T, chromium, url string) string {
	t.Helper()
	profile, err := os.MkdirTemp("", "browsertest-profile-")
	if err != nil {
		t.Fatal(err)
	}
	// Best effort: a straggling helper process may still hold files.
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--no-default-browser-check", "--no-proxy-server",
		"--user-data-dir="+profile,
		"--virtual-time-budget=5000",
		"--dump-dom", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Chromium forks helpers: run it in its own process group and end the
	// whole group, on timeout and after it exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	t.Logf("chromium ran %s", time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("chromium did not finish within %s\nstderr:\n%s", chromiumTimeout, tail(stderr.String()))
	}
	if err != nil {
		t.Fatalf("chromium: %v\nstderr:\n%s", err, tail(stderr.String()))
	}
	if stdout.Len() == 0 {
		t.Fatalf("chromium dumped no DOM\nstderr:\n%s", tail(stderr.String()))
	}
	return stdout.String()
}

var resultRE = regexp.MustCompile(`(?s)<pre id="result" data-state="([a-z]+)">(.*?)</pre>`)

// result parses the page's outcome out of the dumped DOM.
func result(t *testing.T, dom string) pageResult {
	t.Helper()
	m := resultRE.FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no <pre id=\"result\"> in the DOM:\n%s", tail(dom))
	}
	if m[1] != "done" {
		t.Fatalf("the page did not finish (state %q): %s", m[1], m[2])
	}
	var r pageResult
	dec := json.NewDecoder(strings.NewReader(html.UnescapeString(m[2])))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("page result %q: %v", m[2], err)
	}
	t.Logf("page result: %s", html.UnescapeString(m[2]))
	return r
}

func tail(s string) string {
	const max = 4000
	if len(s) > max {
		return fmt.Sprintf("…%s", s[len(s)-max:])
	}
	return s
}
