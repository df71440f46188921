package webhook_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/webhook"
)

// stage is the webhook configuration of stage and prod:
// WEBHOOK_ALLOW_PRIVATE=false.
func stage(d *webhook.Deps) { d.AllowPrivate = false }

// TestCreateRefusesPrivateTargets: in stage/prod CreateEndpoint refuses
// http:// and literal loopback, private, link-local (metadata), CGNAT and
// unspecified addresses and names that are loopback by definition; in dev
// (WEBHOOK_ALLOW_PRIVATE=true) a local http:// receiver is fine.
func TestCreateRefusesPrivateTargets(t *testing.T) {
	st := storetest.SQLite(t)
	prod := newFixture(t, st, newClock(), stage)
	dev := newFixture(t, st, newClock())
	ctx := storetest.SystemContext()
	for _, u := range []string{
		"http://127.0.0.1", "http://10.0.0.1", "http://169.254.169.254/latest/meta-data/",
		"http://hooks.example.com/", // http at all
		"https://127.0.0.1/", "https://127.1.2.3:8443/", "https://10.0.0.1/", "https://172.16.5.4/", "https://192.168.1.1/",
		"https://169.254.169.254/", "https://100.64.0.1/", "https://100.100.100.200/", "https://0.0.0.0/",
		"https://[::1]/", "https://[::ffff:127.0.0.1]/", "https://[fe80::1]/", "https://[fd00:ec2::254]/", "https://[::]/",
		"https://224.0.0.1/", "https://localhost/", "https://LOCALHOST./", "https://api.localhost/", "https://intranet/",
		"https://user:pw@hooks.example.com/", "ftp://hooks.example.com/", "hooks.example.com", "",
	} {
		_, err := prod.svc.Create(ctx, webhook.CreateInput{URL: u})
		if errs.CodeOf(err) != errs.Invalid || !strings.HasPrefix(errs.MessageOf(err), "url: ") {
			t.Errorf("stage: CreateEndpoint %q: %v, want invalid url", u, err)
		}
	}
	if _, err := prod.svc.Create(ctx, webhook.CreateInput{URL: "https://hooks.example.com/registry"}); err != nil {
		t.Errorf("stage: a public https URL: %v", err)
	}
	if _, err := dev.svc.Create(ctx, webhook.CreateInput{URL: "http://127.0.0.1:9999/hook"}); err != nil {
		t.Errorf("dev: a local http receiver: %v", err)
	}
}

// tlsReceiver is an https receiver on loopback counting its requests, and
// a client TLS configuration that trusts it under the name example.com
// (so that only the guard, never TLS, can stop a delivery to it).
func tlsReceiver(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64, *tls.Config) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, &hits, &tls.Config{RootCAs: pool, ServerName: "example.com"}
}

// pointAt makes f's endpoint (created with a public name) point at target,
// as if its name now resolved there (DNS rebinding), and records a change
// for it to deliver.
func pointAt(t *testing.T, f *fixture, st *store.Store, target string) {
	t.Helper()
	ctx := storetest.SystemContext()
	c := f.endpoint(t, "https://hooks.example.com/registry", []string{"tenant.updated"}, "")
	if err := st.Client.WebhookEndpoint.UpdateOneID(c.Endpoint.ID).SetURL(target).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.change(t, f.tenant(t, "ssrf-"+strings.ToLower(c.Endpoint.ID.String()[:8])), "tenant.updated", false); err != nil {
		t.Fatal(err)
	}
}

func lastError(t *testing.T, st *store.Store) (string, string) {
	t.Helper()
	ms := messages(t, st)
	if len(ms) == 0 {
		t.Fatal("no message")
	}
	m := ms[len(ms)-1]
	return m.Status, m.LastError
}

// TestConnectTimeGuard: in stage/prod the dialer refuses blocked addresses
// when it connects, whatever the URL said at creation: a name resolving to
// loopback (localhost), a literal loopback address, and a receiver that
// redirects to one (redirects are never followed) all get nothing
// delivered; the same receiver let through the guard does get the message
// (so it is the guard that refuses).
func TestConnectTimeGuard(t *testing.T) {
	srv, hits, tlsConf := tlsReceiver(t, nil)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	self := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "https://"))
	for _, tc := range []struct{ name, url, why string }{
		{"name resolving to loopback", "https://localhost:" + port + "/hook", "loopback"},
		{"loopback address", "https://127.0.0.1:" + port + "/hook", "loopback"},
		{"private address", "https://10.0.0.1:" + port + "/hook", "private"},
		{"metadata address", "https://169.254.169.254/latest/meta-data/", "link-local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := storetest.SQLite(t)
			f := newFixture(t, st, newClock(), stage, func(d *webhook.Deps) { d.TLSConfig = tlsConf })
			pointAt(t, f, st, tc.url)
			before := hits.Load()
			f.drain(t)
			status, lastErr := lastError(t, st)
			if hits.Load() != before || status != webhook.StatusPending || !strings.Contains(lastErr, "refused") || !strings.Contains(lastErr, tc.why) {
				t.Errorf("%s: %d requests arrived, status %s, last error %q; want none, pending, refused as %s",
					tc.url, hits.Load()-before, status, lastErr, tc.why)
			}
		})
	}
	t.Run("control: let through", func(t *testing.T) {
		st := storetest.SQLite(t)
		f := newFixture(t, st, newClock(), stage, func(d *webhook.Deps) {
			d.TLSConfig = tlsConf
			d.AllowAddr = func(a netip.AddrPort) bool { return a == self }
		})
		pointAt(t, f, st, "https://localhost:"+port+"/hook")
		before := hits.Load()
		f.drain(t)
		if status, lastErr := lastError(t, st); hits.Load() != before+1 || status != webhook.StatusDelivered {
			t.Errorf("the receiver let through the guard: %d requests, %s %q", hits.Load()-before, status, lastErr)
		}
	})
	t.Run("redirect to loopback", func(t *testing.T) {
		inner, innerHits, _ := tlsReceiver(t, nil)
		outer, outerHits, outerTLS := tlsReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, inner.URL+"/stolen", http.StatusTemporaryRedirect)
		})
		outerAddr := netip.MustParseAddrPort(strings.TrimPrefix(outer.URL, "https://"))
		st := storetest.SQLite(t)
		f := newFixture(t, st, newClock(), stage, func(d *webhook.Deps) {
			d.TLSConfig = outerTLS
			d.AllowAddr = func(a netip.AddrPort) bool { return a == outerAddr } // only the first hop
		})
		u, _ := url.Parse(outer.URL)
		pointAt(t, f, st, "https://"+u.Host+"/hook")
		f.drain(t)
		status, lastErr := lastError(t, st)
		if outerHits.Load() != 1 || innerHits.Load() != 0 || status != webhook.StatusPending || !strings.Contains(lastErr, "redirect") {
			t.Errorf("redirect: first hop %d, target %d requests, %s %q; want 1, 0, pending, redirect not followed",
				outerHits.Load(), innerHits.Load(), status, lastErr)
		}
	})
}

// TestBlocked: the address classes the guard refuses, and public ones it
// lets through.
func TestBlocked(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", true}, {"10.0.0.1", true}, {"172.31.255.255", true}, {"192.168.0.10", true},
		{"169.254.169.254", true}, {"100.64.0.1", true}, {"0.0.0.0", true}, {"255.255.255.255", true},
		{"224.0.0.251", true}, {"::1", true}, {"::", true}, {"fe80::1", true}, {"fc00::1", true},
		{"::ffff:10.0.0.1", true}, {"64:ff9b::7f00:1", true},
		{"93.184.216.34", false}, {"8.8.8.8", false}, {"2606:4700::1111", false},
	} {
		if got := webhook.Blocked(netip.MustParseAddr(tc.addr)) != ""; got != tc.blocked {
			t.Errorf("Blocked(%s) = %v, want %v", tc.addr, got, tc.blocked)
		}
	}
}
