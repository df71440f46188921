package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/predicate"
	"github.com/platform/tenant-registry/ent/webhookendpoint"
	"github.com/platform/tenant-registry/ent/webhookmessage"
	"github.com/platform/tenant-registry/internal/lease"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/text"
)

// The worker's policy.
const (
	// leaseFor reserves a claimed message for its worker: longer than an
	// attempt and the writing of its outcome, so no two workers deliver
	// one message at once; a crashed worker's message is retried after it.
	leaseFor = 30 * time.Second
	// batchSize is how many queue heads one round claims at most (with one
	// statement), and parallel how many of them are posted at once.
	batchSize = 64
	parallel  = 16
	// gatherFor is the pause after a round that claimed fewer than
	// batchSize messages, before the next round: what keeps the rounds
	// (and their statements) few under a steady trickle of changes.
	gatherFor = 100 * time.Millisecond
	// maxDelay caps one retry's delay.
	maxDelay = 10 * time.Hour
	// recordTimeout bounds the writing of an outcome, detached from the
	// worker's context.
	recordTimeout = 10 * time.Second
)

// delay is the wait after the n-th failed attempt: base, 2·base, 4·base, …
// at most maxDelay.
func (s *Service) delay(n int) time.Duration { return lease.Backoff(n, s.retryBase, maxDelay) }

// ProcessDue delivers the messages that are due, round after round until
// none is left or ctx ends (the replica stops). Each round claims the
// heads of the queues — a queue is an endpoint's pending messages of one
// tenant, in the order the tenant's changes committed — with a lease, so
// concurrent workers (goroutines or replicas) never deliver one message at
// once and a queue's next message waits until its head is delivered or
// failed for good. It returns how many attempts it made.
func (s *Service) ProcessDue(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, err := s.round(ctx)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
		if n < batchSize {
			// A partial round: under a steady stream of changes the next
			// would claim one or two messages for the same four
			// statements. Let the next ones gather first.
			select {
			case <-ctx.Done():
			case <-time.After(gatherFor):
			}
		}
	}
	return total, nil
}

func (s *Service) round(ctx context.Context) (int, error) {
	now := s.clock()
	heads, err := s.client.WebhookMessage.Query().
		Where(webhookmessage.Status(StatusPending), webhookmessage.NextAttemptAtLTE(now), leaseFree(now),
			webhookmessage.HasEndpointWith(webhookendpoint.DisabledAtIsNil()), queueHead()).
		Order(ent.Asc(webhookmessage.FieldNextAttemptAt)).
		Limit(batchSize).
		IDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("scan webhook messages: %w", err)
	}
	if len(heads) == 0 || ctx.Err() != nil {
		return 0, nil
	}
	// One claim for the round: every head still free gets the lease and
	// this round's fencing token (a head another worker claimed meanwhile
	// is no longer free, and stays theirs).
	token := uuid.New()
	n, err := s.client.WebhookMessage.Update().
		Where(webhookmessage.IDIn(heads...), webhookmessage.Status(StatusPending), leaseFree(now)).
		SetLeaseToken(token).
		Modify(setLease(now)).
		Save(ctx)
	if err != nil {
		return 0, fmt.Errorf("claim webhook messages: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	claimed, err := s.client.WebhookMessage.Query().Where(webhookmessage.LeaseToken(token)).WithEndpoint().All(ctx)
	if err != nil {
		return 0, fmt.Errorf("read webhook messages: %w", err)
	}
	outcomes := make([]outcome, len(claimed))
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i, m := range claimed {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			outcomes[i] = s.attempt(ctx, m)
		})
	}
	wg.Wait()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	return len(claimed), s.recordAll(rctx, claimed, outcomes, token, ctx.Err() != nil)
}

// queueHead: no earlier message of the same endpoint and group is pending.
func queueHead() predicate.WebhookMessage {
	return func(s *sql.Selector) {
		t := sql.Table(webhookmessage.Table).As("earlier")
		s.Where(sql.NotExists(sql.Select(t.C(webhookmessage.FieldID)).From(t).Where(sql.And(
			sql.ColumnsEQ(t.C(webhookmessage.FieldEndpointID), s.C(webhookmessage.FieldEndpointID)),
			sql.ColumnsEQ(t.C(webhookmessage.FieldGroupID), s.C(webhookmessage.FieldGroupID)),
			sql.EQ(t.C(webhookmessage.FieldStatus), StatusPending),
			sql.ColumnsLT(t.C(webhookmessage.FieldChainSeq), s.C(webhookmessage.FieldChainSeq)),
		))))
	}
}

// outcome is what one attempt got: the HTTP status, and unless a 2xx
// arrived in time, what went wrong.
type outcome struct {
	status  int
	failure string
}

// attempt posts a claimed message once, in a span of its own.
func (s *Service) attempt(ctx context.Context, m *ent.WebhookMessage) outcome {
	ep := m.Edges.Endpoint
	ctx, span := s.tracer.Start(ctx, "webhook.deliver", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("webhook.id", WebhookID(m.ID)),
			attribute.String("webhook.endpoint_id", ep.ID.String()),
			attribute.String("webhook.event_type", m.EventType),
			attribute.Int("webhook.attempt", m.Attempts+1),
		))
	defer span.End()
	status, failure := s.post(ctx, ep, m)
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if failure != "" {
		span.SetStatus(codes.Error, failure)
	}
	return outcome{status: status, failure: failure}
}

// recordAll writes a round's outcomes under its lease token: the
// deliveries in one statement per HTTP status, each failure on its own.
// When the replica stops (stopping), failed attempts are handed back
// rather than counted: their failure may be the stop's.
func (s *Service) recordAll(ctx context.Context, ms []*ent.WebhookMessage, outs []outcome, token uuid.UUID, stopping bool) error {
	now := s.clock()
	delivered := map[int][]uuid.UUID{}
	recovered := map[uuid.UUID]bool{}
	var errList []error
	for i, m := range ms {
		o := outs[i]
		switch {
		case o.failure == "":
			delivered[o.status] = append(delivered[o.status], m.ID)
			if m.Edges.Endpoint.FailingSince != nil {
				recovered[m.EndpointID] = true
			}
		case stopping:
			if err := s.handBack(ctx, m.ID, token); err != nil {
				errList = append(errList, err)
			}
		default:
			if err := s.recordFailure(ctx, m, m.Edges.Endpoint, token, o.status, o.failure); err != nil {
				errList = append(errList, err)
			}
		}
	}
	for status, idList := range delivered {
		n, err := s.client.WebhookMessage.Update().
			Where(webhookmessage.IDIn(idList...), webhookmessage.LeaseToken(token), webhookmessage.Status(StatusPending)).
			SetStatus(StatusDelivered).SetDeliveredAt(now).AddAttempts(1).SetLastStatus(status).SetLastError("").
			ClearLeaseToken().ClearLockedUntil().SetUpdatedAt(now).Save(ctx)
		if err != nil {
			errList = append(errList, fmt.Errorf("record webhook deliveries: %w", err))
			continue
		}
		if n < len(idList) {
			s.log.WarnContext(ctx, "webhook: lease lost before deliveries were recorded", "lost", len(idList)-n)
		}
		s.metrics.outcomes(ctx, StatusDelivered, n)
	}
	for id := range recovered {
		if err := s.client.WebhookEndpoint.Update().Where(webhookendpoint.ID(id), webhookendpoint.FailingSinceNotNil()).
			ClearFailingSince().SetUpdatedAt(now).Exec(ctx); err != nil {
			errList = append(errList, fmt.Errorf("record webhook endpoint success: %w", err))
		}
	}
	return errors.Join(errList...)
}

// post sends m to ep: the outcome is its HTTP status and, unless a 2xx
// arrived within AttemptTimeout, what went wrong.
func (s *Service) post(ctx context.Context, ep *ent.WebhookEndpoint, m *ent.WebhookMessage) (int, string) {
	if !s.http.allowPrivate && !strings.HasPrefix(strings.ToLower(ep.URL), "https://") {
		return 0, "refused: not an https URL (WEBHOOK_ALLOW_PRIVATE is off)"
	}
	now := s.clock()
	keys, err := s.keys(ep, now)
	if err != nil {
		s.log.ErrorContext(ctx, "webhook: cannot sign", "endpoint", ep.ID, "error", err)
		return 0, "cannot sign: the endpoint's secret does not open under IDP_SECRET_KEY"
	}
	ctx, cancel := context.WithTimeout(ctx, AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(m.Payload))
	if err != nil {
		return 0, "bad URL: " + text.Truncate(err.Error(), 500)
	}
	wid := WebhookID(m.ID)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tenant-registry-webhooks/1")
	req.Header.Set(HeaderID, wid)
	req.Header.Set(HeaderTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(HeaderSignature, Sign(keys, wid, now, m.Payload))
	res, err := s.hc.Do(req)
	if err != nil {
		return 0, text.Truncate(err.Error(), 1000)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, MaxResponseBody))
	res.Body.Close()
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return res.StatusCode, ""
	case res.StatusCode >= 300 && res.StatusCode < 400:
		return res.StatusCode, fmt.Sprintf("HTTP %d: redirects are not followed", res.StatusCode)
	default:
		return res.StatusCode, fmt.Sprintf("HTTP %d", res.StatusCode)
	}
}

// recordFailure writes a failed attempt, fenced by the lease token (a
// worker whose lease ran out and was taken over writes nothing): retried
// after the backoff, or failed once GiveUpAfter is over.
func (s *Service) recordFailure(ctx context.Context, m *ent.WebhookMessage, ep *ent.WebhookEndpoint, token uuid.UUID, status int, failure string) error {
	now := s.clock()
	attempts := m.Attempts + 1
	u := s.client.WebhookMessage.Update().
		Where(webhookmessage.ID(m.ID), webhookmessage.LeaseToken(token), webhookmessage.Status(StatusPending)).
		SetAttempts(attempts).SetLastStatus(status).SetLastError(text.Truncate(failure, 2000)).
		ClearLeaseToken().ClearLockedUntil().SetUpdatedAt(now)
	outcome := "retry"
	if !now.Before(m.GiveUpAt) {
		u.SetStatus(StatusFailed)
		outcome = StatusFailed
	} else {
		next := now.Add(s.delay(attempts))
		if next.After(m.GiveUpAt) {
			next = m.GiveUpAt
		}
		u.SetNextAttemptAt(next)
	}
	n, err := u.Save(ctx)
	if err != nil {
		return fmt.Errorf("record webhook failure: %w", err)
	}
	if n == 0 {
		s.log.WarnContext(ctx, "webhook: lease lost before the outcome was recorded", "message", m.ID)
		return nil
	}
	s.metrics.outcomes(ctx, outcome, 1)
	s.log.InfoContext(ctx, "webhook: delivery failed", "endpoint", ep.ID, "webhook_id", WebhookID(m.ID),
		"attempt", attempts, "outcome", outcome, "error", failure)
	return s.failing(ctx, ep, now)
}

// failing notes that ep's delivery failed: it is failing since now unless
// it already was, and it is disabled (and audited) once that is
// DisableAfter ago.
func (s *Service) failing(ctx context.Context, ep *ent.WebhookEndpoint, now time.Time) error {
	if ep.FailingSince == nil {
		err := s.client.WebhookEndpoint.Update().Where(webhookendpoint.ID(ep.ID), webhookendpoint.FailingSinceIsNil()).
			SetFailingSince(now).SetUpdatedAt(now).Exec(ctx)
		if err != nil {
			return fmt.Errorf("record webhook endpoint failure: %w", err)
		}
		return nil
	}
	if now.Sub(*ep.FailingSince) < DisableAfter || ep.DisabledAt != nil {
		return nil
	}
	return store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		n, err := tx.WebhookEndpoint.Update().
			Where(webhookendpoint.ID(ep.ID), webhookendpoint.DisabledAtIsNil(), webhookendpoint.FailingSinceNotNil()).
			SetDisabledAt(now).SetUpdatedAt(now).Save(ctx)
		if err != nil {
			return fmt.Errorf("disable webhook endpoint: %w", err)
		}
		if n == 0 {
			return nil // another worker did, or it succeeded meanwhile
		}
		entry, err := s.entryFor(ctx, tx, ep, "webhook.endpoint.disabled", "u")
		if err != nil {
			return err
		}
		entry.Description = fmt.Sprintf("webhook endpoint disabled: its deliveries failed since %s", ep.FailingSince.UTC().Format(time.RFC3339))
		s.log.WarnContext(ctx, "webhook: endpoint disabled after failing for 5 days", "endpoint", ep.ID)
		return s.recorder.Record(ctx, tx, entry)
	})
}

// handBack releases a message's lease without an outcome: due at once,
// for another worker.
func (s *Service) handBack(ctx context.Context, id, token uuid.UUID) error {
	now := s.clock()
	if err := s.client.WebhookMessage.Update().
		Where(webhookmessage.ID(id), webhookmessage.LeaseToken(token), webhookmessage.Status(StatusPending)).
		ClearLeaseToken().ClearLockedUntil().SetNextAttemptAt(now).SetUpdatedAt(now).Exec(ctx); err != nil {
		return fmt.Errorf("release webhook lease: %w", err)
	}
	return nil
}

// leaseFree: the message's lease is free or ran out, by the database's
// clock on PostgreSQL (replicas' clocks differ), by the service clock on
// the embedded store (one process).
func leaseFree(now time.Time) predicate.WebhookMessage {
	return lease.Free(webhookmessage.FieldLockedUntil, now)
}

// setLease sets locked_until to leaseFor from now, by leaseFree's clock.
func setLease(now time.Time) func(*sql.UpdateBuilder) {
	return lease.Set(webhookmessage.FieldLockedUntil, now, leaseFor)
}

// Backlog counts the pending messages (tests and the benchmark wait on it).
func (s *Service) Backlog(ctx context.Context) (int, error) {
	return s.client.WebhookMessage.Query().Where(webhookmessage.Status(StatusPending)).Count(ctx)
}

// backlogAge is how long the oldest pending message has waited (0 when
// none).
func (s *Service) backlogAge(ctx context.Context) (time.Duration, error) {
	m, err := s.client.WebhookMessage.Query().Where(webhookmessage.Status(StatusPending)).
		Order(ent.Asc(webhookmessage.FieldCreatedAt)).Select(webhookmessage.FieldCreatedAt).First(ctx)
	if ent.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return max(s.clock().Sub(m.CreatedAt), 0), nil
}
