package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// hookReceiver is the webhook receiver of the benchmark, in the bench
// process on loopback: it reads each delivery and answers 204 (no
// verification: the service's side is measured).
type hookReceiver struct {
	srv *http.Server
	url string
	n   atomic.Int64
}

func startHookReceiver() (*hookReceiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &hookReceiver{url: "http://" + l.Addr().String() + "/hooks"}
	h.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Header.Get("webhook-id") != "" && r.Header.Get("webhook-signature") != "" {
			h.n.Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = h.srv.Serve(l) }()
	return h, nil
}

func (h *hookReceiver) close() { _ = h.srv.Close() }

// subscribe creates an endpoint for every event type to the receiver,
// through the API, and answers its id.
func subscribe(admin *apiClient, svc, url string) (string, error) {
	var res struct{ Endpoint struct{ ID string } }
	if err := admin.call("POST", svc+"/v1/webhooks", fmt.Sprintf(`{"url":%q,"description":"bench"}`, url), &res); err != nil {
		return "", fmt.Errorf("create webhook endpoint: %w", err)
	}
	return res.Endpoint.ID, nil
}

// pendingMessages counts the webhook messages not yet delivered or failed.
func pendingMessages(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT count(*) FROM webhook_messages WHERE status = 'pending'").Scan(&n)
	return n, err
}

// waitDrained waits until no webhook message is pending.
func waitDrained(ctx context.Context, db *sql.DB, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := pendingMessages(ctx, db)
		if err != nil || n == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d webhook messages still pending after %v", n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// deliveryRate inserts n pending messages of endpoint, spread over groups
// tenants' queues, by SQL in one statement, as the audit seam would have
// enqueued them, and measures how fast the server's worker (one replica)
// delivers them to the receiver: deliveries per second from the commit to
// the last one received.
func deliveryRate(ctx context.Context, db *sql.DB, h *hookReceiver, endpoint string, n, groups int) (float64, error) {
	before := h.n.Load()
	start := time.Now()
	if _, err := db.ExecContext(ctx, `
		INSERT INTO webhook_messages (id, created_at, updated_at, endpoint_id, group_id, chain_seq, event_id, event_type,
		                              payload, status, attempts, next_attempt_at, give_up_at, last_status, last_error)
		SELECT gen_random_uuid(), now(), now(), $1::uuid, md5('bench-group-' || (i % $3))::uuid::text, i / $3 + 1,
		       gen_random_uuid(), 'bench.delivered',
		       convert_to('{"type":"bench.delivered","timestamp":"' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') ||
		                  '","data":{"n":' || i || '}}', 'UTF8'),
		       'pending', 0, now(), now() + interval '3 days', 0, ''
		FROM generate_series(0, $2 - 1) AS i`, endpoint, n, groups); err != nil {
		return 0, fmt.Errorf("insert webhook messages: %w", err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for h.n.Load()-before < int64(n) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d of %d webhook messages delivered in 10 min", h.n.Load()-before, n)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	if elapsed <= 0 {
		return 0, errors.New("no time elapsed")
	}
	return float64(n) / elapsed.Seconds(), nil
}
