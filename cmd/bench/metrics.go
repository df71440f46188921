package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"
)

// metricSink is an OTLP/HTTP metrics receiver: the server exports its
// metrics to it (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) as it would to a
// collector, and the bench reads the cache counters from what arrives.
type metricSink struct {
	srv *http.Server
	url string

	mu      sync.Mutex
	exports int
	sums    map[string]int64 // "metric/result" → latest cumulative value
	arrived chan struct{}    // closed and replaced on every export
}

func startMetricSink() (*metricSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &metricSink{sums: map[string]int64{}, arrived: make(chan struct{}), url: "http://" + ln.Addr().String() + "/v1/metrics"}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.receive), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *metricSink) close() { _ = s.srv.Close() }

func (s *metricSink) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	var req collectorpb.ExportMetricsServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				sum := m.GetSum()
				if sum == nil {
					continue
				}
				for _, dp := range sum.DataPoints {
					result := ""
					for _, a := range dp.Attributes {
						if a.Key == "result" {
							result = a.Value.GetStringValue()
						}
					}
					s.sums[m.Name+"/"+result] = dp.GetAsInt()
				}
			}
		}
	}
	s.exports++
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&collectorpb.ExportMetricsServiceResponse{})
	_, _ = w.Write(out)
}

// lookups is a cache counter's cumulative hits and misses.
type lookups struct{ hits, misses int64 }

func (l lookups) sub(o lookups) lookups { return lookups{l.hits - o.hits, l.misses - o.misses} }

func (l lookups) ratio() float64 {
	if l.hits+l.misses == 0 {
		return 0
	}
	return float64(l.hits) / float64(l.hits+l.misses)
}

// next waits for an export that starts after the call and returns the
// counter metric's values in it.
func (s *metricSink) next(ctx context.Context, metric string) (lookups, error) {
	// An export in flight may have been collected before the call: wait
	// for two.
	for range 2 {
		s.mu.Lock()
		ch := s.arrived
		s.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			return lookups{}, fmt.Errorf("no metrics export within 10s (OTLP receiver at %s)", s.url)
		case <-ctx.Done():
			return lookups{}, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return lookups{hits: s.sums[metric+"/hit"], misses: s.sums[metric+"/miss"]}, nil
}
