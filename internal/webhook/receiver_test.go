//go:build unix

package webhook_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	c "github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/app"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/storetest"
)

// line is what web/webhook-receiver/receiver.mjs prints per request.
type line struct {
	WebhookID string  `json:"webhook_id"`
	Type      string  `json:"type"`
	TenantID  *string `json:"tenant_id"`
	ChainSeq  int64   `json:"chain_seq"`
	Verified  bool    `json:"verified"`
	Error     string  `json:"error"`
	Answered  int     `json:"answered"`
	// The resource after the change (data.resource), a tenant here.
	ResourceID     string `json:"resource_id"`
	ResourceStatus string `json:"resource_status"`
	ResourceName   string `json:"resource_name"`
}

// nodeReceiver runs the receiver under node.
type nodeReceiver struct {
	t      *testing.T
	script string
	env    []string
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []line
	done   chan struct{}
}

func (r *nodeReceiver) start() {
	t := r.t
	t.Helper()
	cmd := exec.Command("node", r.script)
	cmd.Env = append(os.Environ(), r.env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	listening := make(chan struct{})
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "listening ") {
				close(listening)
				continue
			}
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("receiver printed %q: %v", sc.Text(), err)
				continue
			}
			r.mu.Lock()
			r.lines = append(r.lines, l)
			r.mu.Unlock()
		}
	}()
	select {
	case <-listening:
	case <-time.After(20 * time.Second):
		t.Fatal("the node receiver did not start")
	}
}

func (r *nodeReceiver) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	<-r.done
	_ = r.cmd.Wait()
	r.cmd = nil
}

func (r *nodeReceiver) got() []line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]line(nil), r.lines...)
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStandardWebhooksReceiver runs the whole service (app.New and its
// workers, WEBHOOK_RETRY_BASE=200ms) against a receiver written with the
// standardwebhooks npm library (web/webhook-receiver), which verifies every
// delivery: a tenant's create → activate → cancel (→ update → delete)
// arrive in that order; a
// 500 gets the message again with the same webhook-id (and holds the
// tenant's next message back until then); a receiver that is down for a
// while gets everything once it is back; the delivery log shows the
// attempts.
func TestStandardWebhooksReceiver(t *testing.T) {
	root := pgtest.RequireNodeModule(t, "the webhook receiver test", "standardwebhooks")
	ctx := storetest.SystemContext()
	cfg, err := config.Load(func(k string) string {
		switch k {
		case "API_KEY_SECRET":
			return "receiver-test-secret-0123456789abcdef"
		case "WEBHOOK_RETRY_BASE":
			return "200ms"
		}
		return "" // APP_ENV=dev: WEBHOOK_ALLOW_PRIVATE, token-less platform admin
	})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.SQLite(t)
	a, err := app.New(ctx, app.Deps{Config: cfg, Store: st, Logger: slog.New(slog.DiscardHandler), Clock: clock.System})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	runCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { a.Run(runCtx); close(stopped) }()
	t.Cleanup(func() { stop(); <-stopped })

	// A free port for the receiver, which starts after its endpoint.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	hooks := c.NewWebhookServiceClient(http.DefaultClient, srv.URL)
	tenants := c.NewTenantServiceClient(http.DefaultClient, srv.URL)
	ep, err := hooks.CreateEndpoint(ctx, connect.NewRequest(&v1.CreateEndpointRequest{
		Url: fmt.Sprintf("http://127.0.0.1:%d/hooks", port), Description: "standardwebhooks receiver",
	}))
	if err != nil {
		t.Fatal(err)
	}
	rc := &nodeReceiver{t: t, script: filepath.Join(root, "web", "webhook-receiver", "receiver.mjs"), env: []string{
		"WEBHOOK_SECRET=" + ep.Msg.Secret, fmt.Sprint("PORT=", port), "FAIL_ONCE_TYPE=tenant.activated",
	}}
	rc.start()
	t.Cleanup(rc.stop)

	types := func(tenant string) []string {
		var out []string
		for _, l := range rc.got() {
			if l.TenantID != nil && *l.TenantID == tenant && strings.HasPrefix(l.Type, "tenant.") {
				out = append(out, fmt.Sprintf("%s/%d", l.Type, l.Answered))
			}
		}
		return out
	}
	create := func(slug string) string {
		res, err := tenants.CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Slug: slug, Name: slug}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.Tenant.Id
	}
	first := create("hooked-one")
	if _, err := tenants.ActivateTenant(ctx, connect.NewRequest(&v1.ActivateTenantRequest{Id: first})); err != nil {
		t.Fatal(err)
	}
	if _, err := tenants.CancelTenant(ctx, connect.NewRequest(&v1.CancelTenantRequest{Id: first})); err != nil {
		t.Fatal(err)
	}
	// Issue 15's changes are events too, with no webhook code of their own.
	name := "Hooked One, renamed"
	if _, err := tenants.UpdateTenant(ctx, connect.NewRequest(&v1.UpdateTenantRequest{Id: first, Name: &name})); err != nil {
		t.Fatal(err)
	}
	if _, err := tenants.DeleteTenant(ctx, connect.NewRequest(&v1.DeleteTenantRequest{Id: first})); err != nil {
		t.Fatal(err)
	}
	// The 500 to tenant.activated is retried (same id) before
	// tenant.cancelled may go.
	want := []string{"tenant.created/204", "tenant.activated/500", "tenant.activated/204", "tenant.cancelled/204",
		"tenant.updated/204", "tenant.deletion_scheduled/204"}
	waitFor(t, "the first tenant's events", func() bool { return len(types(first)) >= len(want) })
	if got := types(first); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("first tenant's deliveries: %v, want %v", got, want)
	}
	// data.resource is the tenant after each change, as GetTenant answers it.
	wantResource := map[string][2]string{ // type → status, name
		"tenant.created":            {"trial", "hooked-one"},
		"tenant.activated":          {"active", "hooked-one"},
		"tenant.cancelled":          {"frozen", "hooked-one"},
		"tenant.updated":            {"frozen", name},
		"tenant.deletion_scheduled": {"frozen", name},
	}
	for _, l := range rc.got() {
		w, ok := wantResource[l.Type]
		if !ok || l.TenantID == nil || *l.TenantID != first || l.Answered != 204 {
			continue
		}
		if l.ResourceID != first || l.ResourceStatus != w[0] || l.ResourceName != w[1] {
			t.Errorf("%s: resource id %q, status %q, name %q; want %s, %q, %q", l.Type, l.ResourceID, l.ResourceStatus, l.ResourceName, first, w[0], w[1])
		}
	}

	// Down for a while: the second tenant's events fail to connect, then
	// arrive once the receiver is back.
	rc.stop()
	second := create("hooked-two")
	if _, err := tenants.ActivateTenant(ctx, connect.NewRequest(&v1.ActivateTenantRequest{Id: second})); err != nil {
		t.Fatal(err)
	}
	failedAttempts := func() int {
		res, err := hooks.ListDeliveries(ctx, connect.NewRequest(&v1.ListDeliveriesRequest{Id: ep.Msg.Endpoint.Id}))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, d := range res.Msg.Deliveries {
			if d.TenantId == second && d.Status == "pending" && d.Attempts > 0 && d.LastError != "" {
				n++
			}
		}
		return n
	}
	waitFor(t, "failed attempts while the receiver is down", func() bool { return failedAttempts() > 0 })
	time.Sleep(time.Second)
	rc.start()
	waitFor(t, "the second tenant's events after the receiver is back", func() bool { return len(types(second)) >= 3 })
	// (tenant.activated is answered 500 once again, then delivered.)
	if got, want := types(second), []string{"tenant.created/204", "tenant.activated/500", "tenant.activated/204"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("second tenant's deliveries: %v, want %v", got, want)
	}

	// Every delivery verified with the library; retries kept their id; each
	// tenant's events came in chain order.
	ids := map[string]line{}
	lastSeq := map[string]int64{}
	for _, l := range rc.got() {
		if !l.Verified {
			t.Errorf("the library refused delivery %s: %s", l.WebhookID, l.Error)
			continue
		}
		if prev, ok := ids[l.WebhookID]; ok && (prev.Type != l.Type || prev.ChainSeq != l.ChainSeq) {
			t.Errorf("webhook-id %s carried %s/%d, then %s/%d", l.WebhookID, prev.Type, prev.ChainSeq, l.Type, l.ChainSeq)
		}
		ids[l.WebhookID] = l
		if l.TenantID != nil {
			if l.ChainSeq < lastSeq[*l.TenantID] {
				t.Errorf("tenant %s: %s (seq %d) after seq %d", *l.TenantID, l.Type, l.ChainSeq, lastSeq[*l.TenantID])
			}
			lastSeq[*l.TenantID] = l.ChainSeq
		}
	}
	var activated string
	for _, l := range rc.got() {
		if l.TenantID != nil && *l.TenantID == first && l.Type == "tenant.activated" && l.Answered == 500 {
			activated = l.WebhookID
		}
	}
	// The delivery log: the retried message took two attempts, the ones
	// sent while the receiver was down more than one.
	res, err := hooks.ListDeliveries(ctx, connect.NewRequest(&v1.ListDeliveriesRequest{Id: ep.Msg.Endpoint.Id, PageSize: 100}))
	if err != nil {
		t.Fatal(err)
	}
	var sawRetried, sawDown bool
	for _, d := range res.Msg.Deliveries {
		switch {
		case d.WebhookId == activated:
			sawRetried = true
			if d.Status != "delivered" || d.Attempts != 2 || d.LastHttpStatus != 204 || d.DeliveredAt == nil {
				t.Errorf("delivery log of the message answered 500 once: %v", d)
			}
		case d.TenantId == second && d.EventType == "tenant.created":
			sawDown = true
			if d.Status != "delivered" || d.Attempts < 2 {
				t.Errorf("delivery log of a message sent while the receiver was down: %v", d)
			}
		}
		if d.Status != "delivered" && d.Status != "pending" {
			t.Errorf("delivery %s is %s", d.Id, d.Status)
		}
	}
	if !sawRetried || !sawDown {
		t.Errorf("the delivery log lacks the retried (%v) or the delayed (%v) message: %v", sawRetried, sawDown, res.Msg.Deliveries)
	}
}
