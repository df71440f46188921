package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
)

// protoRequest is a Connect unary request with a protobuf body and a
// bearer token.
func protoRequest(u, token string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest("POST", u, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/proto")
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, err
}

// tailRuns is -tail-only: the fixed-rate row alone (hot-key verify with a
// service token and the bare handler, paired slices at o.rate, each arm
// -duration but at least fixedRateDuration), o.tailRuns times in a row:
// each run's p50s, p99s and their ratio, the p99 of every slice and when
// the worst verify slice began. The p99 moves more from one run to the next
// than the other rows do; this shows by how much, and where, without the
// fixtures of a whole run.
func tailRuns(ctx context.Context, o options, machine string, srv, bl *process, svc, baseline, token, key, slug string, m metricReader) error {
	body, err := proto.Marshal(&v1.VerifyApiKeyRequest{Key: key})
	if err != nil {
		return err
	}
	verifyURL := svc + tenantregistryv1connect.InternalServiceVerifyApiKeyProcedure
	bareURL := baseline + tenantregistryv1connect.InternalServiceVerifyApiKeyProcedure
	lg := newLoadGen(o.conns)
	d := fixedRateSpan(o.duration)
	fmt.Printf("tenant-registry make bench (tail only) — %s\n", machine)
	fmt.Printf("verify, hot key, service token, and the bare handler at %d req/s in alternating %v slices, %v each a run; latency from each request's scheduled start\n", o.rate, pairSlice, d)
	var failed error
	for i := range o.tailRuns {
		r := &row{name: fmt.Sprintf("verify, hot key @ %d/s, run %d", o.rate, i+1), proc: srv, want: slug, rate: o.rate,
			req: func(int, int) (*http.Request, error) { return protoRequest(verifyURL, token, body) }}
		r.pair = &row{name: fmt.Sprintf("bare net/http @ %d/s, run %d", o.rate, i+1), proc: bl, want: `"valid":true`, rate: o.rate,
			req: func(int, int) (*http.Request, error) { return protoRequest(bareURL, token, body) }}
		if err := lg.measure(ctx, r, d, o.warmup, m); err != nil {
			return err
		}
		v, b := r.res, r.pair.res
		fmt.Printf("run %d: verify p50 %s p99 %s (%.0f req/s), bare p50 %s p99 %s (%.0f req/s): p99 %.2f× (target ≤ 1.2×)\n", i+1,
			ms(v.pct(0.5)), ms(v.pct(0.99)), v.rps(), ms(b.pct(0.5)), ms(b.pct(0.99)), b.rps(), float64(v.pct(0.99))/float64(b.pct(0.99)))
		worst := r.slices[0]
		for _, s := range r.slices {
			if s.pct(0.99) > worst.pct(0.99) {
				worst = s
			}
		}
		fmt.Printf("  worst verify slice began %s\n", worst.began.UTC().Format("15:04:05.000"))
		fmt.Printf("  p99 of each %v slice, verify: %s\n  bare:                %s\n", pairSlice, slicePcts(r.slices, 0.99), slicePcts(r.pair.slices, 0.99))
		if err := rowErrors([]*row{r, r.pair}); err != nil && failed == nil {
			failed = err
		}
	}
	return failed
}

// fixedRateSpan is how long each arm of the fixed-rate row runs for a
// -duration of d: at least fixedRateDuration. A p99 is the 1 % tail: at
// 5,000/s one pause of the host of 100 ms is 500 requests, 4 % of a 5 s
// arm; twenty slices of each arm make the row's p99 the server's, not one
// such pause's.
func fixedRateSpan(d time.Duration) time.Duration { return max(d, fixedRateDuration) }

// slicePcts lists the p-th percentile of each slice, in ms.
func slicePcts(slices []result, p float64) string {
	out := make([]string, len(slices))
	for i, s := range slices {
		out[i] = fmt.Sprintf("%.1f", float64(s.pct(p))/float64(time.Millisecond))
	}
	return strings.Join(out, " ")
}
