package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

// keyStack is one server instance: its own apikey.Service (own cache and,
// on PostgreSQL, own listener), its own handler and HTTP server.
type keyStack struct {
	srv     *httptest.Server
	keys    *apikey.Service
	tenants *tenant.Service
	logs    *logtest.Buffer
}

func newKeyStack(t testing.TB, st *store.Store, opts ...stackOption) *keyStack {
	t.Helper()
	ctx := storetest.SystemContext()
	logs := &logtest.Buffer{}
	opts = append([]stackOption{withLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	s := newStack(t, st, opts...)
	srv, keys := s.srv, s.keys
	if st.Postgres() {
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = keys.Listen(lctx, st.URL) }()
		t.Cleanup(func() { cancel(); <-done })
		deadline := time.Now().Add(10 * time.Second)
		for !keys.Listening() {
			if time.Now().After(deadline) {
				t.Fatal("listener did not connect")
			}
			time.Sleep(time.Millisecond)
		}
	}
	return &keyStack{srv: srv, keys: keys, tenants: s.tenants, logs: logs}
}

type verdict struct {
	Valid    bool     `json:"valid"`
	Reason   string   `json:"reason"`
	TenantID string   `json:"tenant_id"`
	Slug     string   `json:"slug"`
	KeyID    string   `json:"key_id"`
	Scopes   []string `json:"scopes"`
	Products []string `json:"products"`
}

type apiKeyJSON struct {
	ID        string   `json:"id"`
	TenantID  string   `json:"tenant_id"`
	Name      string   `json:"name"`
	Prefix    string   `json:"prefix"`
	Scopes    []string `json:"scopes"`
	Revoked   bool     `json:"revoked"`
	ExpiresAt string   `json:"expires_at"`
}

func (k *keyStack) verify(t *testing.T, key string) verdict {
	t.Helper()
	var v verdict
	body, _ := json.Marshal(map[string]string{"key": key})
	if status := call(t, k.srv, http.MethodPost, "/v1/internal/api-keys/verify", string(body), &v); status != http.StatusOK {
		t.Fatalf("verify: status %d", status)
	}
	return v
}

func (k *keyStack) create(t *testing.T, name string) (apiKeyJSON, string) {
	t.Helper()
	var out struct {
		APIKey apiKeyJSON `json:"api_key"`
		Key    string     `json:"key"`
	}
	status := call(t, k.srv, http.MethodPost, "/v1/api-keys",
		`{"tenant_id":"`+acmeID+`","name":"`+name+`","scopes":["certifai:read"]}`, &out)
	if status != http.StatusOK || !strings.HasPrefix(out.Key, "trk_") {
		t.Fatalf("create: %d %+v", status, out)
	}
	return out.APIKey, out.Key
}

func TestAPIKeysOverHTTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		a := newKeyStack(t, st)
		key, plain := a.create(t, "ci")
		want := verdict{Valid: true, TenantID: acmeID, Slug: "acme", KeyID: key.ID, Scopes: []string{"certifai:read"}, Products: []string{"certifai", "compliance"}}
		for _, path := range []string{"/v1/internal/api-keys/verify", "/tenantregistry.v1.InternalService/VerifyApiKey"} {
			var got verdict
			if status := call(t, a.srv, http.MethodPost, path, `{"key":"`+plain+`"}`, &got); status != http.StatusOK || mustJSON(t, got) != mustJSON(t, want) {
				t.Errorf("%s: %d %s, want %s", path, status, mustJSON(t, got), mustJSON(t, want))
			}
		}

		// List: the prefix, never the key or its hash.
		res, err := http.Get(a.srv.URL + "/v1/api-keys?tenant_id=" + acmeID)
		if err != nil {
			t.Fatal(err)
		}
		listBody, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(listBody), key.Prefix) {
			t.Fatalf("list: %d %s", res.StatusCode, listBody)
		}
		if strings.Contains(string(listBody), plain[12:]) || strings.Contains(string(listBody), `"hash"`) || strings.Contains(string(listBody), `"key"`) {
			t.Errorf("list shows a secret: %s", listBody)
		}

		// Rotate with overlap, then revoke the new key.
		var rot struct {
			APIKey   apiKeyJSON `json:"api_key"`
			Key      string     `json:"key"`
			Previous apiKeyJSON `json:"previous_api_key"`
		}
		if status := call(t, a.srv, http.MethodPost, "/v1/api-keys/"+key.ID+"/rotate", `{"overlap_seconds":3600}`, &rot); status != http.StatusOK || rot.Previous.ExpiresAt == "" {
			t.Fatalf("rotate: %d %+v", status, rot)
		}
		if got := a.verify(t, plain); !got.Valid {
			t.Errorf("old key during the overlap: %+v", got)
		}
		var rev struct {
			APIKey apiKeyJSON `json:"api_key"`
		}
		for range 2 {
			if status := call(t, a.srv, http.MethodDelete, "/v1/api-keys/"+rot.APIKey.ID, "", &rev); status != http.StatusOK || !rev.APIKey.Revoked {
				t.Fatalf("revoke: %d %+v", status, rev)
			}
		}
		if got := a.verify(t, rot.Key); got.Valid || got.Reason != apikey.ReasonRevoked {
			t.Errorf("after revoke: %+v, want revoked", got)
		}
		var e apiError
		if status := call(t, a.srv, http.MethodDelete, "/v1/api-keys/not-a-uuid", "", &e); status != http.StatusBadRequest || e.Code != "invalid_argument" {
			t.Errorf("revoke bad id: %d %+v", status, e)
		}

		for _, k := range []string{plain, rot.Key} {
			if strings.Contains(a.logs.String(), k[4:]) {
				t.Errorf("the log holds a plaintext key")
			}
		}
	})
}

// TestVerifyGarbageOverHTTP: whatever the body, never a 5xx.
func TestVerifyGarbageOverHTTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		a := newKeyStack(t, st)
		cases := []struct{ name, body string }{
			{"empty object", `{}`},
			{"empty key", `{"key":""}`},
			{"wrong prefix", `{"key":"sk_live_abc"}`},
			{"bad alphabet", `{"key":"trk_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"}`},
			{"huge", `{"key":"trk_` + strings.Repeat("A", 100_000) + `"}`},
			{"over the body limit", `{"key":"` + strings.Repeat("A", 2<<20) + `"}`},
			{"non-UTF-8", "{\"key\":\"trk_\xff\xfe\"}"},
			{"escaped NUL", `{"key":"trk_\u0000"}`},
			{"not JSON", `key=trk_x`},
			{"wrong type", `{"key":42}`},
			{"unknown field", `{"token":"trk_x"}`},
		}
		for _, path := range []string{"/v1/internal/api-keys/verify", "/tenantregistry.v1.InternalService/VerifyApiKey"} {
			for _, c := range cases {
				res, err := http.Post(a.srv.URL+path, "application/json", strings.NewReader(c.body))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode >= 500 {
					t.Errorf("%s %s: status %d %s", path, c.name, res.StatusCode, b)
				}
				if res.StatusCode == http.StatusOK && !strings.Contains(string(b), `"reason":"unknown"`) {
					t.Errorf("%s %s: 200 but %s", path, c.name, b)
				}
			}
		}
	})
}

// TestTwoInstances: two server instances (own caches, own listeners) on
// one PostgreSQL. Both have the key cached; a revoke through A is seen by
// B's next verify once B's listener has processed the commit's
// notification, which the test waits for with a deadline (the guarantee is
// "within the notification latency", not "before Revoke returns").
func TestTwoInstances(t *testing.T) {
	stA := storetest.Postgres(t)
	stB, err := store.Open(storetest.SystemContext(), stA.URL, store.Options{MaxConns: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stB.Close() })
	a, b := newKeyStack(t, stA), newKeyStack(t, stB)

	waitInvalidated := func(before uint64) time.Duration {
		t.Helper()
		start := time.Now()
		for b.keys.Invalidations() <= before {
			if time.Since(start) > 5*time.Second {
				t.Fatal("B's listener saw no notification within 5s")
			}
			time.Sleep(100 * time.Microsecond)
		}
		return time.Since(start)
	}
	warm := func(plain string) {
		t.Helper()
		for _, s := range []*keyStack{a, b} {
			for range 2 {
				if got := s.verify(t, plain); !got.Valid {
					t.Fatalf("warm-up verify: %+v", got)
				}
			}
		}
		if a.keys.CacheLen() == 0 || b.keys.CacheLen() == 0 {
			t.Fatalf("caches not warm: A %d, B %d", a.keys.CacheLen(), b.keys.CacheLen())
		}
	}

	key, plain := a.create(t, "shared")
	warm(plain)
	before := b.keys.Invalidations()
	var rev struct {
		APIKey apiKeyJSON `json:"api_key"`
	}
	if status := call(t, a.srv, http.MethodDelete, "/v1/api-keys/"+key.ID, "", &rev); status != http.StatusOK {
		t.Fatalf("revoke through A: %d", status)
	}
	if got := a.verify(t, plain); got.Valid || got.Reason != "revoked" {
		t.Errorf("A right after its own revoke: %+v, want revoked", got)
	}
	lat := waitInvalidated(before)
	if got := b.verify(t, plain); got.Valid || got.Reason != "revoked" {
		t.Errorf("B after the revoke: %+v, want revoked", got)
	}
	t.Logf("B processed the revoke's notification %v after Revoke returned", lat)

	// A freeze through A (tenant trigger), then reactivation.
	_, plain2 := a.create(t, "shared2")
	warm(plain2)
	var tn struct {
		Tenant struct {
			Status string `json:"status"`
		} `json:"tenant"`
	}
	before = b.keys.Invalidations()
	if status := call(t, a.srv, http.MethodPost, "/v1/tenants/"+acmeID+"/cancel", "", &tn); status != http.StatusOK || tn.Tenant.Status != "frozen" {
		t.Fatalf("cancel: %d %+v", status, tn)
	}
	waitInvalidated(before)
	if got := b.verify(t, plain2); got.Valid || got.Reason != "tenant_frozen" {
		t.Errorf("B after the freeze: %+v, want tenant_frozen", got)
	}
	before = b.keys.Invalidations()
	if status := call(t, a.srv, http.MethodPost, "/v1/tenants/"+acmeID+"/activate", "", &tn); status != http.StatusOK {
		t.Fatalf("activate: %d", status)
	}
	waitInvalidated(before)
	if got := b.verify(t, plain2); !got.Valid {
		t.Errorf("B after reactivation: %+v, want valid", got)
	}

	// A writer other than the service (psql): B still hears of it.
	before = b.keys.Invalidations()
	if _, err := stA.DB.Exec(`UPDATE api_keys SET revoked_at = now() WHERE prefix = $1`, plain2[:12]); err != nil {
		t.Fatal(err)
	}
	waitInvalidated(before)
	if got := b.verify(t, plain2); got.Valid || got.Reason != "revoked" {
		t.Errorf("B after an outside revoke: %+v, want revoked", got)
	}
}
