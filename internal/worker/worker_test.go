package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/worker"
)

// TestRun: a job runs at once and again each interval as the system
// principal, a failure is logged and the loop goes on, Final runs after
// the context ends, and Run returns once every job stopped.
func TestRun(t *testing.T) {
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	var runs, finals, once atomic.Int32
	var sawSystem atomic.Bool
	done := make(chan struct{})
	go func() {
		worker.Run(ctx, log,
			worker.Job{Name: "ticker", Every: time.Millisecond, Run: func(ctx context.Context) error {
				p, ok := principal.From(ctx)
				sawSystem.Store(ok && p.Type == principal.ActorSystem)
				if runs.Add(1) == 2 {
					return errors.New("boom")
				}
				return nil
			}, Final: func(ctx context.Context) error {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("Final without a deadline")
				}
				finals.Add(1)
				return nil
			}},
			worker.Job{Name: "once", Run: func(ctx context.Context) error { once.Add(1); <-ctx.Done(); return nil }},
		)
		close(done)
	}()
	for runs.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got, want := finals.Load(), int32(1); got != want {
		t.Errorf("Final ran %d times, want %d", got, want)
	}
	if got, want := once.Load(), int32(1); got != want {
		t.Errorf("the Every-less job ran %d times, want %d", got, want)
	}
	if !sawSystem.Load() {
		t.Error("jobs do not run as the system principal")
	}
	if got := strings.Count(logs.String(), "ticker failed"); got != 1 {
		t.Errorf("%d failure lines, want 1:\n%s", got, logs)
	}
}
