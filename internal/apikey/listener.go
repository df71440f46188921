package apikey

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Channel is the notification channel the migrations' triggers notify on
// UPDATE/DELETE of api_keys (revoked_at, expires_at, scopes, hash or
// tenant_id changed: "key:<id>"), UPDATE of tenants (status, slug) and
// their DELETE, and any write to tenant_products ("tenant:<id>") — whoever
// the writer is. The listeners' heartbeats ("heartbeat:…") share it.
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

// healthy: connected, and a heartbeat sent less than staleAfter ago came
// back — so every change committed more than staleAfter ago has been
// processed. A connection that died silently, or never delivers, stops
// being healthy after staleAfter at the latest.
func (l *listenerState) healthy() bool {
	return l.connected.Load() && time.Duration(mono()-l.lastAlive.Load()) < l.staleAfter
}

// aliveAt records that everything committed before at (a heartbeat's send
// time) has been processed.
func (l *listenerState) aliveAt(at int64) {
	if at > l.lastAlive.Load() {
		l.lastAlive.Store(at)
	}
}

// Listening reports whether the cache is in use: the listener is connected
// and healthy. When false, every verify reads the database.
func (s *Service) Listening() bool { return s.cache.enabled && s.listener.healthy() }

// Invalidations counts the notifications (heartbeats aside) the listener has
// processed (each one dropped what it names before the count moved).
func (s *Service) Invalidations() uint64 { return s.listener.notifications.Load() }

// ListenerConnects counts the listener's successful (re)connections.
func (s *Service) ListenerConnects() uint64 { return s.listener.connects.Load() }

// ListenerPID is the backend process id of the listener's connection (0
// while not connected).
func (s *Service) ListenerPID() uint32 { return s.listener.pid.Load() }

// Listen holds a dedicated connection to databaseURL (DATABASE_LISTEN_URL:
// a direct connection, never through a transaction-pooling PgBouncer,
// which does not deliver notifications) that LISTENs on Channel and drops
// the cached verdicts each notification names, until ctx is done.
//
// Delivery is proven, not assumed: every StaleAfter/3 the listener sends a
// heartbeat NOTIFY through the service's pool and the cache is used only
// while one came back on the LISTEN connection within StaleAfter. A connection that delivers nothing (a pooler, a proxy, a
// half-dead socket) therefore turns the cache off within StaleAfter, and
// is dropped and reconnected. Reconnects back off from 50 ms to 5 s; the
// backoff starts over after a connection that delivered. Each (re)connect
// and each loss clears the cache, since notifications may have been missed.
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
	// Nothing named, so that a listener mistakenly pointed at a pooler fails
	// with errNotDelivered, which says what is wrong.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
		cfg.ConnectTimeout = 5 * time.Second
	}
	backoff := minBackoff
	for {
		delivered, err := s.listenOnce(ctx, cfg)
		if ctx.Err() != nil {
			return nil
		}
		if delivered {
			backoff = minBackoff
		}
		s.log.WarnContext(ctx, "api key cache listener disconnected; verifying against the database until it reconnects", "error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// Reconnect backoff of the listener.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// heartbeatPrefix starts the payload of the listener's own heartbeats.
const heartbeatPrefix = "heartbeat:"

// errNotDelivered: the listener's heartbeats stopped coming back.
var errNotDelivered = errors.New("notifications are not delivered on the LISTEN connection " +
	"(behind a transaction-pooling PgBouncer? point DATABASE_LISTEN_URL at PostgreSQL directly)")

// listenOnce connects, LISTENs and processes notifications until the
// connection fails, stops delivering, or ctx is done. delivered reports
// whether a heartbeat came back on this connection.
func (s *Service) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) (delivered bool, err error) {
	l := s.listener
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		// Fail closed first, then clear what may have gone stale.
		l.connected.Store(false)
		l.pid.Store(0)
		s.flush()
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(closeCtx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return false, err
	}
	// Anything cached before now may have missed a notification. The cache
	// stays off until the first heartbeat is back.
	s.flush()
	l.pid.Store(conn.PgConn().PID())
	l.connects.Add(1)
	connectedAt := mono()
	var tag [8]byte
	_, _ = rand.Read(tag[:])
	beatPrefix := heartbeatPrefix + hex.EncodeToString(tag[:]) + ":"
	var seq uint64
	sentAt := map[uint64]int64{} // heartbeats in flight: seq → send time
	beat := max(l.staleAfter/3, 10*time.Millisecond)
	nextBeat := time.Now()
	for {
		if wait := time.Until(nextBeat); wait <= 0 {
			// A heartbeat this connection must receive back, sent through the
			// service's pool like every other write: it proves that a
			// notification committed by another session reaches this one.
			// (Sent on the listening session itself it would prove nothing
			// behind a transaction-pooling PgBouncer, which passes a
			// session's own notifications while it is linked to the server
			// connection and drops everyone else's.) A failed send is no
			// reason to drop the connection: the missing echo is.
			seq++
			sentAt[seq] = mono()
			pctx, cancel := context.WithTimeout(ctx, beat)
			_, err := s.client.ExecContext(pctx, "SELECT pg_notify($1, $2)", Channel, beatPrefix+strconv.FormatUint(seq, 10))
			cancel()
			if err != nil && ctx.Err() == nil {
				s.log.DebugContext(ctx, "api key cache listener: heartbeat not sent", "error", err)
			}
			nextBeat = time.Now().Add(beat)
		}
		last := l.lastAlive.Load()
		if !delivered {
			last = connectedAt
		}
		if time.Duration(mono()-last) >= l.staleAfter {
			return delivered, errNotDelivered
		}
		wctx, cancel := context.WithTimeout(ctx, time.Until(nextBeat))
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return delivered, nil
		case errors.Is(err, context.DeadlineExceeded):
			continue
		default:
			return delivered, err
		}
		if strings.HasPrefix(n.Payload, heartbeatPrefix) {
			if rest, ok := strings.CutPrefix(n.Payload, beatPrefix); ok {
				// PostgreSQL delivers notifications in commit order: every
				// change committed before this heartbeat was sent has been
				// processed by now.
				got, err := strconv.ParseUint(rest, 10, 64)
				at, sent := sentAt[got]
				if err != nil || !sent {
					continue
				}
				for k := range sentAt {
					if k <= got {
						delete(sentAt, k)
					}
				}
				l.aliveAt(at)
				if !delivered {
					delivered = true
					l.connected.Store(true)
					s.log.InfoContext(ctx, "api key cache listener connected; notifications are delivered", "channel", Channel)
				}
			}
			continue // another replica's heartbeat
		}
		s.invalidate(n.Payload)
		l.notifications.Add(1)
	}
}

// invalidate drops what a notification's payload names: "key:<id>" (or the
// first release's "api_keys:<id>") a key, "tenant:<id>" ("tenants:<id>",
// "tenant_products:<tenant id>") a tenant's keys. Anything else clears the
// whole cache: a payload this build does not know must not be ignored.
func (s *Service) invalidate(payload string) {
	kind, arg, _ := strings.Cut(payload, ":")
	id, err := uuid.Parse(arg)
	switch {
	case err != nil:
		s.flush()
	case kind == "key" || kind == "api_keys":
		s.cache.dropKey(id)
	case kind == "tenant" || kind == "tenants" || kind == "tenant_products":
		s.dropTenant(id)
	default:
		s.flush()
	}
}
