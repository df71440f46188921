package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/storetest"
)

// BenchmarkResolveClaims measures POST /v1/internal/keycloak/claims (the REST
// path Keycloak calls at token issuance) over real HTTP on PostgreSQL, with
// the dev seed's acme tenant. Compare with BenchmarkBaseline, taken the same
// way in the same run: the difference is the service's own cost (routing,
// transcoding, the claims query).
//
//	go test -run '^$' -bench 'ResolveClaims|Baseline' -benchtime 2s ./internal/server/
func BenchmarkResolveClaims(b *testing.B) {
	srv := newStack(b, storetest.Postgres(b)).srv
	benchPOST(b, srv, "/v1/internal/keycloak/claims", `{"slug":"acme"}`, `"products":["certifai","compliance"]`)
}

// BenchmarkBaseline is a bare net/http handler answering a constant JSON
// body of the same shape, over the same kind of httptest server and client.
func BenchmarkBaseline(b *testing.B) {
	body := []byte(`{"tenant_id":"00000000-0000-0000-0000-000000000001","slug":"acme","products":["certifai","compliance"],"plan":"professional","status":"active"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
	benchPOST(b, srv, "/v1/internal/keycloak/claims", `{"slug":"acme"}`, `"products":["certifai","compliance"]`)
}

// benchPOST posts body to path from parallel clients with keep-alive
// connections, and reports throughput (req/s) and per-request latency
// percentiles (p50-µs, p99-µs).
func benchPOST(b *testing.B, srv *httptest.Server, path, body, wantInBody string) {
	b.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	b.Cleanup(tr.CloseIdleConnections)
	url := srv.URL + path

	// One checked request before timing.
	res, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(got), wantInBody) {
		b.Fatalf("warm-up: %d %s", res.StatusCode, got)
	}

	var (
		mu        sync.Mutex
		latencies []time.Duration
	)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			start := time.Now()
			res, err := client.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Errorf("status %d", res.StatusCode)
				return
			}
			local = append(local, time.Since(start))
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	b.StopTimer()
	if elapsed := b.Elapsed(); elapsed > 0 {
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		pct := func(p float64) float64 {
			return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds())
		}
		b.ReportMetric(pct(0.50), "p50-µs")
		b.ReportMetric(pct(0.99), "p99-µs")
	}
}
