package server_test

import (
	"encoding/json"
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

// BenchmarkVerifyHotPath drives, in one run and over real HTTP with many
// keep-alive connections (RunParallel × 32 goroutines per core), on
// PostgreSQL:
//
//	baseline     a bare net/http handler returning a constant JSON body
//	verify       POST /v1/internal/api-keys/verify with a hot (cached) key
//	by-slug      GET /v1/tenants/by-slug/acme (the tenant read cache)
//
// and logs each one's req/s as a ratio of the baseline's.
//
//	go test -run '^$' -bench VerifyHotPath -benchtime 3s ./internal/server/
func BenchmarkVerifyHotPath(b *testing.B) {
	st := storetest.Postgres(b)
	k := newKeyStack(b, st)
	var created struct {
		Key string `json:"key"`
	}
	res, err := http.Post(k.srv.URL+"/v1/api-keys", "application/json",
		strings.NewReader(`{"tenant_id":"`+acmeID+`","name":"bench","scopes":["certifai:read"]}`))
	if err != nil {
		b.Fatal(err)
	}
	if err := decodeJSON(res, &created); err != nil || created.Key == "" {
		b.Fatalf("create key: %v", err)
	}
	verifyBody := `{"key":"` + created.Key + `"}`

	constBody := []byte(`{"valid":true,"tenant_id":"00000000-0000-0000-0000-000000000001","slug":"acme","key_id":"8a0d4c52-3c1e-4e0b-9b8f-0f4f6d0f7a11","scopes":["certifai:read"],"products":["certifai","compliance"]}`)
	base := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(constBody)
	}))
	b.Cleanup(base.Close)

	rates := map[string]float64{}
	run := func(name string, srv *httptest.Server, method, path, body, want string) {
		b.Run(name, func(b *testing.B) { rates[name] = benchRequest(b, srv, method, path, body, want) })
	}
	run("baseline", base, http.MethodPost, "/v1/internal/api-keys/verify", verifyBody, `"valid":true`)
	run("verify", k.srv, http.MethodPost, "/v1/internal/api-keys/verify", verifyBody, `"valid":true`)
	run("verify-connect", k.srv, http.MethodPost, "/tenantregistry.v1.InternalService/VerifyApiKey", verifyBody, `"valid":true`)
	run("by-slug", k.srv, http.MethodGet, "/v1/tenants/by-slug/acme", "", `"slug":"acme"`)
	if rates["baseline"] > 0 {
		b.Logf("verify: %.0f req/s = %.0f%% of baseline %.0f req/s; by-slug: %.0f req/s = %.0f%%",
			rates["verify"], 100*rates["verify"]/rates["baseline"], rates["baseline"],
			rates["by-slug"], 100*rates["by-slug"]/rates["baseline"])
	}
}

func decodeJSON(res *http.Response, out any) error {
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// benchRequest sends method path body from 32 goroutines per core over
// keep-alive connections, checks every answer, and reports req/s and
// latency percentiles; it returns req/s.
func benchRequest(b *testing.B, srv *httptest.Server, method, path, body, want string) float64 {
	b.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 512
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	b.Cleanup(tr.CloseIdleConnections)
	url := srv.URL + path
	do := func() (int, string, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			return 0, "", err
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, string(got), nil
	}
	if status, got, err := do(); err != nil || status != http.StatusOK || !strings.Contains(got, want) {
		b.Fatalf("warm-up: %d %s %v", status, got, err)
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
	)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			start := time.Now()
			status, got, err := do()
			if err != nil || status != http.StatusOK || !strings.Contains(got, want) {
				b.Errorf("%d %s %v", status, got, err)
				return
			}
			local = append(local, time.Since(start))
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	b.StopTimer()
	rate := 0.0
	if elapsed := b.Elapsed(); elapsed > 0 {
		rate = float64(b.N) / elapsed.Seconds()
		b.ReportMetric(rate, "req/s")
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		pct := func(p float64) float64 {
			return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds())
		}
		b.ReportMetric(pct(0.50), "p50-µs")
		b.ReportMetric(pct(0.99), "p99-µs")
	}
	return rate
}
