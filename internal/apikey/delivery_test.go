package apikey_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	keys "github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/catalog"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

// notifyProxy is a TCP proxy in front of PostgreSQL that passes everything
// except the NotificationResponse ('A') messages drop says to swallow — as
// a transaction-pooling PgBouncer, or a broken middlebox, would.
type notifyProxy struct {
	ln       net.Listener
	upstream string
	drop     atomic.Pointer[func(payload string) bool]
	wg       sync.WaitGroup
}

func startNotifyProxy(t *testing.T, databaseURL string, drop func(string) bool) (proxied string, p *notifyProxy) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p = &notifyProxy{ln: ln, upstream: u.Host}
	p.drop.Store(&drop)
	p.wg.Go(p.serve)
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	u.Host = ln.Addr().String()
	return u.String(), p
}

func (p *notifyProxy) setDrop(drop func(string) bool) { p.drop.Store(&drop) }

func (p *notifyProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
		p.wg.Go(func() { p.filter(c, s); c.Close() })
	}
}

// filter copies server messages (type byte, int32 length, body) to the
// client, leaving out the notifications to drop.
func (p *notifyProxy) filter(client io.Writer, server io.Reader) {
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(server, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		body := make([]byte, n)
		if _, err := io.ReadFull(server, body); err != nil {
			return
		}
		if hdr[0] == 'A' && len(body) > 4 {
			// pid int32, channel\0, payload\0
			rest := body[4:]
			if i := bytes.IndexByte(rest, 0); i >= 0 {
				payload := strings.TrimSuffix(string(rest[i+1:]), "\x00")
				if (*p.drop.Load())(payload) {
					continue
				}
			}
		}
		if _, err := client.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
}

func dropAll(string) bool  { return true }
func dropNone(string) bool { return false }

// dropWrites passes the listener's heartbeats only: the cache is in use,
// but no other writer's change reaches it.
func dropWrites(payload string) bool { return !strings.HasPrefix(payload, "heartbeat:") }

// TestCacheNeedsDelivery: a LISTEN connection that is connected but
// delivers nothing never turns the cache on, and one that stops delivering
// turns it off (and is replaced) — verifies then read the database, so a
// revoke elsewhere is seen at once.
func TestCacheNeedsDelivery(t *testing.T) {
	st := storetest.Postgres(t)
	f := setup(t, st, false)
	proxied, proxy := startNotifyProxy(t, st.URL, dropAll)
	ctx, cancel := context.WithCancel(storetest.SystemContext())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.keys.Listen(ctx, proxied) }()
	t.Cleanup(func() { cancel(); <-done })

	c := f.create(t, "k", nil, nil)
	// Connected, heartbeats sent, none back: the listener gives up on the
	// connection after StaleAfter (3s) and says why.
	waitFor(t, "the listener to reconnect", func() bool { return f.keys.ListenerConnects() >= 2 })
	if f.keys.Listening() {
		t.Fatal("cache in use on a connection that delivers no notification")
	}
	for range 3 {
		wantReason(t, "valid (uncached)", f.verify(t, c.Plaintext), "")
	}
	if n := f.keys.CacheLen(); n != 0 {
		t.Fatalf("cache holds %d verdicts without delivery", n)
	}
	if !strings.Contains(f.logs.String(), "not delivered") {
		t.Errorf("the listener did not log that notifications are not delivered:\n%s", f.logs.String())
	}

	// Delivery works: cache on.
	proxy.setDrop(dropNone)
	waitFor(t, "delivery", f.keys.Listening)
	f.verify(t, c.Plaintext)
	if n := f.keys.CacheLen(); n != 1 {
		t.Fatalf("cache holds %d verdicts with delivery, want 1", n)
	}
	// Delivery stops on a live connection: the cache goes off within
	// StaleAfter, and a revoke whose notification is swallowed is seen.
	proxy.setDrop(dropAll)
	waitFor(t, "the cache to be bypassed", func() bool { return !f.keys.Listening() })
	revokeSilently(t, st, c.Key.ID)
	wantReason(t, "revoked while notifications are swallowed", f.verify(t, c.Plaintext), keys.ReasonRevoked)
}

// TestLocalWritesFlushAtOnce: this replica's own freeze, entitlement change
// and key change are visible to its next verify without any notification
// (the proxy passes only heartbeats, so the cache is in use but deaf to
// other writers).
func TestLocalWritesFlushAtOnce(t *testing.T) {
	ctx := storetest.SystemContext()
	st := storetest.Postgres(t)
	f := setup(t, st, false)
	proxied, _ := startNotifyProxy(t, st.URL, dropWrites)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = f.keys.Listen(lctx, proxied) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "listener delivering heartbeats", f.keys.Listening)
	ents := storetest.Must(entitlement.NewService(entitlement.Deps{Client: st.Client, Recorder: storetest.Recorder(f.clock.Now, true), Catalog: catalog.Default(), Clock: f.clock.Now}))

	c := f.create(t, "k", nil, nil)
	cached := func(step string) keys.Verdict {
		t.Helper()
		f.verify(t, c.Plaintext)
		v := f.verify(t, c.Plaintext)
		if n := f.keys.CacheLen(); n != 1 {
			t.Fatalf("%s: cache holds %d verdicts, want 1", step, n)
		}
		return v
	}
	if v := cached("start"); strings.Join(v.Products, ",") != "certifai" {
		t.Fatalf("products %v, want certifai", v.Products)
	}
	if _, err := ents.Grant(ctx, f.tenant.ID.String(), "compliance"); err != nil {
		t.Fatal(err)
	}
	if v := f.verify(t, c.Plaintext); strings.Join(v.Products, ",") != "certifai,compliance" {
		t.Errorf("products right after a grant on this replica: %v, want certifai,compliance", v.Products)
	}
	cached("after grant")
	if _, err := f.tenants.Cancel(ctx, f.tenant.ID.String()); err != nil {
		t.Fatal(err)
	}
	wantReason(t, "right after a freeze on this replica", f.verify(t, c.Plaintext), keys.ReasonTenantFrozen)
	if _, err := f.tenants.Activate(ctx, f.tenant.ID.String()); err != nil {
		t.Fatal(err)
	}
	cached("reactivated")
	if _, err := f.keys.Revoke(ctx, c.Key.ID.String()); err != nil {
		t.Fatal(err)
	}
	wantReason(t, "right after a revoke on this replica", f.verify(t, c.Plaintext), keys.ReasonRevoked)
}

// TestTargetedInvalidation: a notification drops the verdicts of the key or
// tenant it names, and only those.
func TestTargetedInvalidation(t *testing.T) {
	ctx := storetest.SystemContext()
	st := storetest.Postgres(t)
	f := setup(t, st, true)
	created := f.keys.Invalidations()
	other, err := f.tenants.Create(ctx, tenant.CreateInput{Slug: "initech", Name: "Initech", Plan: "starter"})
	if err != nil {
		t.Fatal(err)
	}
	// Its provisioning notifies "tenant:<other>": let that land before the
	// cache is warmed, or it would drop o in the first case.
	f.settle(t, created)
	a := f.create(t, "a", nil, nil)
	b := f.create(t, "b", nil, nil)
	o, err := f.keys.Create(ctx, keys.CreateInput{TenantID: other.ID.String(), Name: "o"})
	if err != nil {
		t.Fatal(err)
	}
	warm := func() {
		t.Helper()
		for _, k := range []string{a.Plaintext, b.Plaintext, o.Plaintext} {
			f.verify(t, k)
		}
	}
	// Writes by another writer (psql, another replica): only the triggers'
	// notifications tell this replica.
	for _, tc := range []struct {
		name     string
		sql      string
		arg      uuid.UUID
		wantLeft int
		check    func()
	}{
		{"one key revoked", `UPDATE api_keys SET revoked_at = now() WHERE id = $1`, a.Key.ID, 2,
			func() { wantReason(t, "revoked key", f.verify(t, a.Plaintext), keys.ReasonRevoked) }},
		{"another tenant frozen", `UPDATE tenants SET status = 'frozen' WHERE id = $1`, other.ID, 1,
			func() { wantReason(t, "frozen tenant's key", f.verify(t, o.Plaintext), keys.ReasonTenantFrozen) }},
		{"an entitlement of the first tenant", `DELETE FROM tenant_products WHERE tenant_id = $1`, f.tenant.ID, 0,
			func() {
				if v := f.verify(t, b.Plaintext); len(v.Products) != 0 {
					t.Errorf("products after the entitlement's delete: %v", v.Products)
				}
			}},
	} {
		warm()
		before, n := f.keys.Invalidations(), f.keys.CacheLen()
		if _, err := st.DB.ExecContext(ctx, tc.sql, tc.arg); err != nil {
			t.Fatal(err)
		}
		f.settle(t, before)
		if got := f.keys.CacheLen(); got != tc.wantLeft {
			t.Errorf("%s: %d of %d cached verdicts left, want %d", tc.name, got, n, tc.wantLeft)
		}
		tc.check()
	}
	// The survivor is served from the cache.
	hits, _ := f.keys.CacheStats()
	f.verify(t, b.Plaintext)
	f.verify(t, b.Plaintext)
	if h, _ := f.keys.CacheStats(); h == hits {
		t.Errorf("no cache hit for a key nothing invalidated")
	}
}

// TestListenerBackoffResets: after a connection that delivered, the next
// reconnect waits the shortest backoff again, however many came before.
func TestListenerBackoffResets(t *testing.T) {
	ctx := storetest.SystemContext()
	st := storetest.Postgres(t)
	f := setup(t, st, true)
	const kills = 6 // without the reset the sixth wait would be 50ms·2⁵ = 1.6s
	for range kills {
		connects := f.keys.ListenerConnects()
		if _, err := st.DB.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, int64(f.keys.ListenerPID())); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "reconnect", func() bool { return f.keys.ListenerConnects() > connects && f.keys.Listening() })
	}
	var waits []string
	for _, line := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(line, "listener disconnected") {
			_, rest, _ := strings.Cut(line, `"retry_in":"`)
			wait, _, _ := strings.Cut(rest, `"`)
			waits = append(waits, wait)
		}
	}
	if len(waits) != kills {
		t.Fatalf("%d disconnects logged, want %d:\n%s", len(waits), kills, f.logs.String())
	}
	for i, w := range waits {
		if w != "50ms" {
			t.Errorf("reconnect %d after a delivering connection waited %s, want 50ms (all: %v)", i+1, w, waits)
		}
	}
}
