package apikey

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channel is the notification channel the migration's triggers notify on
// UPDATE/DELETE of api_keys (revoked_at, expires_at, scopes, hash or
// tenant_id changed), UPDATE of tenants (status) and any write to
// tenant_products — whoever the writer is.
const Channel = "tenant_registry_invalidate"

// ListenerAppName is the listener connection's application_name.
const ListenerAppName = "tenant-registry-apikey-listener"

// listenerState is what Verify asks of the listener: is the cache safe to
// use right now.
type listenerState struct {
	staleAfter    time.Duration
	connected     atomic.Bool
	lastAlive     atomic.Int64 // monotonic nanoseconds since procStart
	notifications atomic.Uint64
	connects      atomic.Uint64
	pid           atomic.Uint32
}

var procStart = time.Now()

func mono() int64 { return int64(time.Since(procStart)) }

func newListenerState(staleAfter time.Duration) *listenerState {
	return &listenerState{staleAfter: staleAfter}
}

// healthy: connected, and the connection proved alive (a notification or
// a heartbeat round trip) within staleAfter. A connection that died
// silently stops being healthy after staleAfter at the latest.
func (l *listenerState) healthy() bool {
	return l.connected.Load() && time.Duration(mono()-l.lastAlive.Load()) < l.staleAfter
}

func (l *listenerState) alive() { l.lastAlive.Store(mono()) }

// Listening reports whether the cache is in use: the listener is connected
// and healthy. When false, every verify reads the database.
func (s *Service) Listening() bool { return s.cache.enabled && s.listener.healthy() }

// Invalidations counts the notifications the listener has processed (each
// one cleared the cache before the count moved).
func (s *Service) Invalidations() uint64 { return s.listener.notifications.Load() }

// ListenerConnects counts the listener's successful (re)connections.
func (s *Service) ListenerConnects() uint64 { return s.listener.connects.Load() }

// ListenerPID is the backend process id of the listener's connection (0
// while not connected).
func (s *Service) ListenerPID() uint32 { return s.listener.pid.Load() }

// Listen holds a dedicated connection to databaseURL that LISTENs on
// Channel and clears the cache on every notification, until ctx is done.
// It reconnects with backoff; while it is not connected (or its connection
// has not proven alive within StaleAfter) the cache is bypassed, and each
// (re)connect clears the cache, since notifications may have been missed.
// A no-op on SQLite, whose Service has no cache.
func (s *Service) Listen(ctx context.Context, databaseURL string) error {
	if !s.cache.enabled {
		return nil
	}
	if databaseURL == "" {
		return errNoListener
	}
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return err
	}
	cfg.RuntimeParams["application_name"] = ListenerAppName
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
		cfg.ConnectTimeout = 5 * time.Second
	}
	backoff := 50 * time.Millisecond
	for {
		err := s.listenOnce(ctx, cfg)
		if ctx.Err() != nil {
			return nil
		}
		s.log.WarnContext(ctx, "api key cache listener disconnected; verifying against the database until it reconnects", "error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
		if err == nil {
			backoff = 50 * time.Millisecond
		}
	}
}

// listenOnce connects, LISTENs and processes notifications until the
// connection fails or ctx is done.
func (s *Service) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) (err error) {
	l := s.listener
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		// Fail closed first, then clear what may have gone stale.
		l.connected.Store(false)
		l.pid.Store(0)
		s.cache.flush()
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(closeCtx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	// Anything cached before now may have missed a notification.
	s.cache.flush()
	l.alive()
	l.pid.Store(conn.PgConn().PID())
	l.connected.Store(true)
	l.connects.Add(1)
	s.log.InfoContext(ctx, "api key cache listener connected", "channel", Channel)
	beat := max(l.staleAfter/3, 10*time.Millisecond)
	for {
		wctx, cancel := context.WithTimeout(ctx, beat)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			// The payload names the row; clearing everything is simplest
			// and correct, and writes are rare next to verifies.
			s.cache.flush()
			l.alive()
			l.notifications.Add(1)
			continue
		case ctx.Err() != nil:
			return nil
		case !errors.Is(err, context.DeadlineExceeded):
			return err
		}
		// Heartbeat: a round trip proves the connection alive, and any
		// notification committed before it arrives ahead of its answer.
		pctx, cancel := context.WithTimeout(ctx, beat)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		l.alive()
	}
}
