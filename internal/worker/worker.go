// Package worker runs the service's background jobs (Keycloak provisioning,
// trial expiry, audit retention and digests, API-key usage): each in its own goroutine
// as the system principal, at once and then every interval, a failure
// logged once and the loop going on, until the context is done.
package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/platform/tenant-registry/internal/principal"
)

// Job is one background job.
type Job struct {
	Name string
	// Every is the time between two runs; 0 runs Run once (a job that
	// loops by itself until its context is done, such as a listener).
	Every time.Duration
	Run   func(ctx context.Context) error
	// Final, when set, runs once after the context is done, under a
	// FinalTimeout deadline of its own (a last flush).
	Final func(ctx context.Context) error
}

// FinalTimeout bounds a job's Final run.
const FinalTimeout = 5 * time.Second

// Run runs jobs until ctx is done and returns once every one has stopped.
func Run(ctx context.Context, log *slog.Logger, jobs ...Job) {
	ctx = principal.With(ctx, principal.System)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { run(ctx, log, j) })
	}
	wg.Wait()
}

func run(ctx context.Context, log *slog.Logger, j Job) {
	defer func() {
		if j.Final == nil {
			return
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FinalTimeout)
		defer cancel()
		if err := j.Final(fctx); err != nil {
			log.Warn(j.Name+": final run failed", "error", err)
		}
	}()
	var tick <-chan time.Time
	if j.Every > 0 {
		t := time.NewTicker(j.Every)
		defer t.Stop()
		tick = t.C
	}
	for {
		if err := j.Run(ctx); err != nil && ctx.Err() == nil {
			log.ErrorContext(ctx, j.Name+" failed", "error", err)
		}
		if tick == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}
