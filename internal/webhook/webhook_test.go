package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/ent/webhookmessage"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/secret"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/webhook"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var testKey = []byte("webhook-test-key-0123456789abcde") // 32 bytes

// fixture is one replica's webhook service and recorder over a store.
type fixture struct {
	st    *store.Store
	clock *storetest.Clock
	rec   *audit.Recorder
	svc   *webhook.Service
}

func newFixture(t *testing.T, st *store.Store, clock *storetest.Clock, mod ...func(*webhook.Deps)) *fixture {
	t.Helper()
	outbox := storetest.Must(webhook.NewOutbox(webhook.OutboxDeps{Clock: clock.Now}))
	rec := storetest.Must(audit.NewRecorder(audit.RecorderDeps{Clock: clock.Now, Postgres: st.Postgres(), Events: outbox}))
	d := webhook.Deps{
		Client: st.Client, Recorder: rec, Clock: clock.Now, Pager: storetest.Pager(t),
		Box: storetest.Must(secret.NewBox(testKey)), RetryBase: time.Second, AllowPrivate: true, Postgres: st.Postgres(),
		TracerProvider: tracenoop.NewTracerProvider(), MeterProvider: noop.NewMeterProvider(),
	}
	for _, m := range mod {
		m(&d)
	}
	return &fixture{st: st, clock: clock, rec: rec, svc: storetest.Must(webhook.NewService(d))}
}

func newClock() *storetest.Clock { return storetest.NewClock(time.Now()) }

// tenant makes a tenant row.
func (f *fixture) tenant(t *testing.T, slug string) uuid.UUID {
	t.Helper()
	id := uuid.New()
	now := f.clock.Now()
	if err := f.st.Client.Tenant.Create().SetID(id).SetSlug(slug).SetName(strings.ToUpper(slug)).
		SetCreatedAt(now).SetUpdatedAt(now).Exec(storetest.SystemContext()); err != nil {
		t.Fatal(err)
	}
	return id
}

// change records an audited change of tenant tid in a transaction that
// commits unless fail is set (then fn's error rolls it back).
func (f *fixture) change(t *testing.T, tid uuid.UUID, action string, fail bool) error {
	t.Helper()
	ctx := storetest.SystemContext()
	return store.WithTx(ctx, f.st.Client, func(tx *ent.Tx) error {
		if err := f.rec.Record(ctx, tx, audit.Entry{Action: action, CRUD: "u", TenantID: tid, TenantName: "T",
			Target: audit.Target{ID: tid.String(), Type: "tenant"}, Fields: map[string]string{"k": action}}); err != nil {
			return err
		}
		if fail {
			return errBoom
		}
		return nil
	})
}

var errBoom = errors.New("boom: the change fails after its event")

func (f *fixture) endpoint(t *testing.T, url string, types []string, tenant string) *webhook.Created {
	t.Helper()
	c, err := f.svc.Create(storetest.SystemContext(), webhook.CreateInput{URL: url, EventTypes: types, TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// drain runs the worker until nothing is due.
func (f *fixture) drain(t *testing.T) {
	t.Helper()
	if _, err := f.svc.ProcessDue(storetest.SystemContext()); err != nil {
		t.Fatal(err)
	}
}

// received is one request a test receiver got.
type received struct {
	id, timestamp, signature string
	body                     []byte
	payload                  webhook.Payload
}

// receiver is an HTTP server recording requests; answer decides the
// status of each (nil: 204).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(r received, n int) int
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := received{id: r.Header.Get("webhook-id"), timestamp: r.Header.Get("webhook-timestamp"),
			signature: r.Header.Get("webhook-signature"), body: body}
		if err := json.Unmarshal(body, &got.payload); err != nil {
			t.Errorf("body is not the payload: %v: %s", err, body)
		}
		rc.mu.Lock()
		rc.got = append(rc.got, got)
		n := len(rc.got)
		answer := rc.answer
		rc.mu.Unlock()
		status := http.StatusNoContent
		if answer != nil {
			status = answer(got, n)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// hmacOf is the Standard Webhooks signature, computed here independently
// of the code under test: base64(HMAC-SHA256(base64-decoded secret,
// "id.timestamp.body")).
func hmacOf(t *testing.T, secret, id, ts string, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) != 32 || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q is not whsec_ + base64 of 32 bytes", secret)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// signatures returns the v1 signatures of a webhook-signature header.
func signatures(t *testing.T, header string) []string {
	t.Helper()
	var out []string
	for _, s := range strings.Split(header, " ") {
		v, sig, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			t.Fatalf("signature %q is not v1,<base64>", s)
		}
		out = append(out, sig)
	}
	return out
}

func messages(t *testing.T, st *store.Store) []*ent.WebhookMessage {
	t.Helper()
	ms, err := st.Client.WebhookMessage.Query().Order(ent.Asc(webhookmessage.FieldChainSeq)).All(storetest.SystemContext())
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestMessageInChangeTransaction: the message is written in the change's
// transaction: a change rolled back leaves neither its event nor a message
// (and nothing is delivered); a committed one leaves one message per
// subscribed endpoint, none for endpoints of other types or tenants, and
// reads and products' own appended events send nothing.
func TestMessageInChangeTransaction(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st, newClock())
		rc := newReceiver(t)
		acme, globex := f.tenant(t, "acme-co"), f.tenant(t, "globex-co")
		all := f.endpoint(t, rc.srv.URL+"/all", []string{"tenant.updated", "tenant.activated"}, "")
		onlyGlobex := f.endpoint(t, rc.srv.URL+"/globex", nil, globex.String())
		f.endpoint(t, rc.srv.URL+"/other", []string{"api_key.created"}, "")
		// The globex endpoint's creation is an event of globex, which it
		// subscribes to: its first message.
		if ms := messages(t, st); len(ms) != 1 || ms[0].EventType != "webhook.endpoint.created" || ms[0].EndpointID != onlyGlobex.Endpoint.ID {
			t.Fatalf("after creating the endpoints: %+v, want globex's endpoint.created to the globex endpoint", ms)
		}
		if _, err := st.Client.WebhookMessage.Delete().Exec(storetest.SystemContext()); err != nil {
			t.Fatal(err)
		}

		if err := f.change(t, acme, "tenant.updated", true); !errors.Is(err, errBoom) {
			t.Fatalf("rolled-back change: %v", err)
		}
		if got := messages(t, st); len(got) != 0 {
			t.Fatalf("a rolled-back change left %d messages", len(got))
		}
		f.drain(t)
		if got := rc.requests(); len(got) != 0 {
			t.Fatalf("a rolled-back change sent %d requests", len(got))
		}
		if err := f.change(t, acme, "tenant.updated", false); err != nil {
			t.Fatal(err)
		}
		ms := messages(t, st)
		if len(ms) != 1 || ms[0].EndpointID != all.Endpoint.ID || ms[0].EventType != "tenant.updated" || ms[0].GroupID != acme.String() {
			t.Fatalf("after one committed change of acme: %+v, want one tenant.updated message to the all endpoint", ms)
		}
		ev, err := st.Client.AuditLog.Query().Where(auditlog.Action("tenant.updated")).Only(storetest.SystemContext())
		if err != nil {
			t.Fatal(err)
		}
		if ms[0].EventID != ev.ID || ms[0].ChainSeq != ev.ChainSeq {
			t.Errorf("message event %s seq %d, want the audit event %s seq %d", ms[0].EventID, ms[0].ChainSeq, ev.ID, ev.ChainSeq)
		}
		// globex's change goes to both the all endpoint and globex's own.
		if err := f.change(t, globex, "tenant.activated", false); err != nil {
			t.Fatal(err)
		}
		var to []uuid.UUID
		for _, m := range messages(t, st) {
			if m.GroupID == globex.String() {
				to = append(to, m.EndpointID)
			}
		}
		if len(to) != 2 || !slices.Contains(to, all.Endpoint.ID) || !slices.Contains(to, onlyGlobex.Endpoint.ID) {
			t.Errorf("globex's change went to %v, want the all and the globex endpoints", to)
		}
		// A read, and a product's own event, are not state changes of the registry.
		ctx := storetest.SystemContext()
		if err := store.WithTx(ctx, st.Client, func(tx *ent.Tx) error {
			return f.rec.Record(ctx, tx, audit.Entry{Action: "tenant.viewed", CRUD: "r", TenantID: globex, TenantName: "G"})
		}); err != nil {
			t.Fatal(err)
		}
		auditSvc := storetest.Must(audit.NewService(audit.Deps{Client: st.Client, Recorder: f.rec, Clock: f.clock.Now, Pager: storetest.Pager(t)}))
		if _, err := auditSvc.Append(ctx, audit.AppendInput{TenantID: globex.String(), Action: "doc.edited", CRUD: "u", Actor: audit.Actor{ID: "u1"}}); err != nil {
			t.Fatal(err)
		}
		if got := len(messages(t, st)); got != 3 {
			t.Errorf("%d messages after a read and a product's event, want the 3 of before", got)
		}
		f.drain(t)
		if got := len(rc.requests()); got != 3 {
			t.Errorf("%d deliveries, want 3", got)
		}
	})
}

// TestSignaturesAndRotation: every delivery carries the Standard Webhooks
// headers and a signature computed over id.timestamp.body with the
// endpoint's secret (checked here with an HMAC of the test's own); after a
// rotation both the old and the new secret sign, each verifying, until the
// 24 hours are over; then only the new one.
func TestSignaturesAndRotation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st, newClock())
		rc := newReceiver(t)
		tid := f.tenant(t, "signers")
		c := f.endpoint(t, rc.srv.URL+"/hook", []string{"tenant.updated"}, "")
		oldSecret := c.Secret
		deliver := func() received {
			t.Helper()
			if err := f.change(t, tid, "tenant.updated", false); err != nil {
				t.Fatal(err)
			}
			f.drain(t)
			got := rc.requests()
			if len(got) == 0 {
				t.Fatal("nothing delivered")
			}
			return got[len(got)-1]
		}
		check := func(r received, secrets ...string) {
			t.Helper()
			if !strings.HasPrefix(r.id, "msg_") {
				t.Errorf("webhook-id %q", r.id)
			}
			ts, err := strconv.ParseInt(r.timestamp, 10, 64)
			if err != nil || ts != f.clock.Now().Unix() {
				t.Errorf("webhook-timestamp %q, want %d", r.timestamp, f.clock.Now().Unix())
			}
			sigs := signatures(t, r.signature)
			if len(sigs) != len(secrets) {
				t.Fatalf("%d signatures %q, want %d", len(sigs), r.signature, len(secrets))
			}
			for _, s := range secrets {
				if want := hmacOf(t, s, r.id, r.timestamp, r.body); !slices.Contains(sigs, want) {
					t.Errorf("no signature of secret %.10s…: %q", s, r.signature)
				}
			}
			if r.payload.Type != "tenant.updated" || r.payload.Data.TenantID == nil || *r.payload.Data.TenantID != tid.String() {
				t.Errorf("payload %+v", r.payload)
			}
		}
		check(deliver(), oldSecret)

		rot, err := f.svc.RotateSecret(storetest.SystemContext(), c.Endpoint.ID.String())
		if err != nil {
			t.Fatal(err)
		}
		if rot.Secret == oldSecret || !strings.HasPrefix(rot.Secret, "whsec_") {
			t.Fatalf("rotated secret %q", rot.Secret)
		}
		if rot.Endpoint.PreviousSecretUntil == nil || !rot.Endpoint.PreviousSecretUntil.Equal(f.clock.Now().Add(24*time.Hour)) {
			t.Errorf("previous secret until %v, want 24 h from now", rot.Endpoint.PreviousSecretUntil)
		}
		f.clock.Advance(23 * time.Hour)
		check(deliver(), oldSecret, rot.Secret)
		f.clock.Advance(time.Hour + time.Second)
		check(deliver(), rot.Secret)

		// The secret is stored sealed, not in plain text.
		row, err := st.Client.WebhookEndpoint.Get(storetest.SystemContext(), c.Endpoint.ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(row.SecretSealed), strings.TrimPrefix(rot.Secret, "whsec_")) {
			t.Error("the secret is stored in plain text")
		}
	})
}

// TestTwoWorkers: two workers (on PostgreSQL two replicas with their own
// pools on one database) deliver concurrently: no message is ever posted
// twice or by both at once, and each tenant's messages arrive in the order
// its changes committed.
func TestTwoWorkers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		clock := newClock()
		a := newFixture(t, st, clock)
		other := st
		if st.Postgres() {
			var err error
			if other, err = store.Open(storetest.SystemContext(), st.URL, store.Options{MaxConns: 10}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Close() })
		}
		b := newFixture(t, other, clock)
		rc := newReceiver(t)
		var (
			mu       sync.Mutex
			inFlight = map[string]int{}
			overlaps int
		)
		rc.answer = func(r received, _ int) int {
			mu.Lock()
			inFlight[r.id]++
			if inFlight[r.id] > 1 {
				overlaps++
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			inFlight[r.id]--
			mu.Unlock()
			return http.StatusOK
		}
		a.endpoint(t, rc.srv.URL, []string{"tenant.updated"}, "")
		const tenants, per = 8, 12
		tids := make([]uuid.UUID, tenants)
		for i := range tids {
			tids[i] = a.tenant(t, fmt.Sprintf("two-workers-%d", i))
		}
		for j := range per {
			for i, tid := range tids {
				f := a
				if (i+j)%2 == 1 {
					f = b
				}
				if err := f.change(t, tid, "tenant.updated", false); err != nil {
					t.Fatal(err)
				}
			}
		}
		ctx := storetest.SystemContext()
		var wg sync.WaitGroup
		for _, f := range []*fixture{a, b, a, b} {
			wg.Go(func() {
				for range 200 {
					if _, err := f.svc.ProcessDue(ctx); err != nil {
						t.Error(err)
						return
					}
					if n, _ := f.svc.Backlog(ctx); n == 0 {
						return
					}
				}
			})
		}
		wg.Wait()
		got := rc.requests()
		seen := map[string]int{}
		lastSeq := map[string]int64{}
		for _, r := range got {
			seen[r.id]++
			tenant := *r.payload.Data.TenantID
			if r.payload.Data.ChainSeq <= lastSeq[tenant] {
				t.Errorf("tenant %s: seq %d after %d", tenant, r.payload.Data.ChainSeq, lastSeq[tenant])
			}
			lastSeq[tenant] = r.payload.Data.ChainSeq
		}
		if len(seen) != tenants*per {
			t.Errorf("%d messages delivered, want %d", len(seen), tenants*per)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s delivered %d times", id, n)
			}
		}
		if overlaps != 0 {
			t.Errorf("%d deliveries of a message while it was in flight", overlaps)
		}
	})
}

// TestRetriesOrderAndGivingUp: a message answered 500 is retried with the
// same webhook-id after WEBHOOK_RETRY_BASE, doubling; while it fails, its
// tenant's later messages wait and other tenants' do not; the delivery log
// shows the attempts; after 3 days a message is failed (and no longer holds
// the queue back), and an endpoint failing for 5 days is disabled and
// audited.
func TestRetriesOrderAndGivingUp(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		clock := newClock()
		f := newFixture(t, st, clock)
		rc := newReceiver(t)
		failing := ""
		var failingMu sync.Mutex
		rc.answer = func(r received, _ int) int {
			failingMu.Lock()
			defer failingMu.Unlock()
			if failing != "" && *r.payload.Data.TenantID == failing {
				return http.StatusInternalServerError
			}
			return http.StatusOK
		}
		setFailing := func(s string) { failingMu.Lock(); failing = s; failingMu.Unlock() }
		ep := f.endpoint(t, rc.srv.URL, []string{"tenant.updated", "tenant.activated"}, "")
		bad, good := f.tenant(t, "bad-tenant"), f.tenant(t, "good-tenant")
		setFailing(bad.String())
		for _, tid := range []uuid.UUID{bad, good} {
			for _, action := range []string{"tenant.updated", "tenant.activated"} {
				if err := f.change(t, tid, action, false); err != nil {
					t.Fatal(err)
				}
			}
		}
		f.drain(t)
		var goodTypes, badIDs []string
		for _, r := range rc.requests() {
			switch *r.payload.Data.TenantID {
			case good.String():
				goodTypes = append(goodTypes, r.payload.Type)
			case bad.String():
				badIDs = append(badIDs, r.id)
			}
		}
		if !slices.Equal(goodTypes, []string{"tenant.updated", "tenant.activated"}) {
			t.Errorf("good tenant got %v, want both in order", goodTypes)
		}
		if len(badIDs) != 1 {
			t.Fatalf("bad tenant: %d attempts, want 1 (its second message waits)", len(badIDs))
		}
		// Backoff: due after 1 s, then 2 s, then 4 s.
		for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			clock.Advance(wait - time.Millisecond)
			f.drain(t)
			if n := len(rc.requests()); n != 3+i {
				t.Fatalf("attempt %d came before its delay (%d requests)", i+2, n)
			}
			clock.Advance(time.Millisecond)
			f.drain(t)
			got := rc.requests()
			if len(got) != 4+i || got[len(got)-1].id != badIDs[0] {
				t.Fatalf("attempt %d after %v: %d requests, want a retry of %s", i+2, wait, len(got), badIDs[0])
			}
		}
		ds, _, err := f.svc.Deliveries(storetest.SystemContext(), webhook.DeliveriesInput{EndpointID: ep.Endpoint.ID.String()})
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]*webhook.Delivery{}
		for _, d := range ds {
			byID[d.WebhookID] = d
		}
		d := byID[badIDs[0]]
		if d == nil || d.Status != webhook.StatusPending || d.Attempts != 4 || d.LastStatus != 500 || d.LastError != "HTTP 500" ||
			d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(clock.Now().Add(8*time.Second)) {
			t.Fatalf("delivery log of the failing message: %+v", d)
		}
		// The receiver recovers: the retry carries the same id, then the
		// held-back message follows.
		setFailing("")
		clock.Advance(8 * time.Second)
		f.drain(t)
		got := rc.requests()
		if len(got) != 8 || got[6].id != badIDs[0] || got[7].payload.Type != "tenant.activated" {
			t.Fatalf("after recovery: %d requests, want the retry then the held-back message", len(got))
		}

		// Giving up after 3 days, and disabling after 5 failing days (with
		// a change every 10 hours meanwhile).
		setFailing(bad.String())
		before := len(messages(t, st))
		start := len(rc.requests())
		for range 14 {
			if err := f.change(t, bad, "tenant.updated", false); err != nil {
				t.Fatal(err)
			}
			f.drain(t)
			clock.Advance(10 * time.Hour)
		}
		ms := messages(t, st)[before:]
		first, second := ms[0], ms[1]
		if first.Status != webhook.StatusFailed {
			t.Errorf("after days of 500s the message is %s, want failed", first.Status)
		}
		if first.Attempts < 5 || first.GiveUpAt.Sub(first.CreatedAt) != 72*time.Hour {
			t.Errorf("failed after %d attempts, give up at +%v", first.Attempts, first.GiveUpAt.Sub(first.CreatedAt))
		}
		if second.Attempts == 0 {
			t.Error("a failed message still holds its queue back")
		}
		row, err := st.Client.WebhookEndpoint.Get(storetest.SystemContext(), ep.Endpoint.ID)
		if err != nil {
			t.Fatal(err)
		}
		if row.DisabledAt == nil {
			t.Fatalf("endpoint failing since %v is not disabled", row.FailingSince)
		}
		n, err := st.Client.AuditLog.Query().Where(auditlog.Action("webhook.endpoint.disabled"), auditlog.TargetID(ep.Endpoint.ID.String())).Count(storetest.SystemContext())
		if err != nil || n != 1 {
			t.Errorf("%d webhook.endpoint.disabled events (%v), want 1", n, err)
		}
		// Nothing more goes to a disabled endpoint; RetryDelivery enables it.
		sent := len(rc.requests())
		clock.Advance(24 * time.Hour)
		f.drain(t)
		if len(rc.requests()) != sent || sent <= start {
			t.Errorf("requests: %d at the start of the failing period, %d when disabled, %d after", start, sent, len(rc.requests()))
		}
		setFailing("")
		if _, err := f.svc.Retry(storetest.SystemContext(), ep.Endpoint.ID.String(), first.ID.String()); err != nil {
			t.Fatal(err)
		}
		f.drain(t)
		after := rc.requests()[sent:]
		if len(after) == 0 || after[0].id != webhook.WebhookID(first.ID) {
			t.Errorf("retry of a failed delivery: %d requests, the first not of its webhook-id %s", len(after), webhook.WebhookID(first.ID))
		}
		if d, err := f.svc.Get(storetest.SystemContext(), ep.Endpoint.ID.String()); err != nil || d.DisabledAt != nil {
			t.Errorf("after RetryDelivery the endpoint is %+v (%v), want enabled", d, err)
		}
		// Delivered now: a second retry is refused, and sends nothing.
		sent = len(rc.requests())
		_, err = f.svc.Retry(storetest.SystemContext(), ep.Endpoint.ID.String(), first.ID.String())
		if got, want := errs.CodeOf(err), errs.Precondition; got != want {
			t.Errorf("retry of a delivered message: %v (code %q), want code %q", err, got, want)
		}
		f.drain(t)
		if got := len(rc.requests()); got != sent {
			t.Errorf("retry of a delivered message sent %d requests, want none", got-sent)
		}
	})
}
