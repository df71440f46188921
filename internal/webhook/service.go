// Package webhook sends the registry's events out as Standard Webhooks
// (https://www.standardwebhooks.com): endpoints (platform admins manage
// them), the messages the audit Recorder enqueues in each change's
// transaction (Outbox), and the delivery worker that signs and posts them
// with leases, in commit order per endpoint and tenant, with retries.
package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/platform/tenant-registry/ent"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/ent/webhookendpoint"
	"github.com/platform/tenant-registry/ent/webhookmessage"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/deps"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/secret"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/text"
)

// Limits of an endpoint.
const (
	MaxDescriptionLen = 500
	MaxEventTypes     = 50
	// RotationOverlap is how long the previous secret keeps signing after a
	// rotation.
	RotationOverlap = 24 * time.Hour
	// DisableAfter: an endpoint whose deliveries failed for this long
	// without a success is disabled.
	DisableAfter = 5 * 24 * time.Hour
)

// Service manages endpoints and delivers messages.
type Service struct {
	client    *ent.Client
	hc        *http.Client
	recorder  *audit.Recorder
	clock     clock.Clock
	pager     *cursor.Pager
	box       *secret.Box
	log       *slog.Logger
	http      clientOptions
	retryBase time.Duration
	postgres  bool
	tracer    trace.Tracer
	metrics   *metrics
}

// Deps are what a Service needs. Client, Recorder, Clock, Pager, Box,
// TracerProvider and MeterProvider are required.
type Deps struct {
	Client   *ent.Client
	Recorder *audit.Recorder
	Clock    clock.Clock
	Pager    *cursor.Pager
	// Box seals the endpoints' signing secrets (IDP_SECRET_KEY).
	Box *secret.Box
	// RetryBase is the first retry's delay (WEBHOOK_RETRY_BASE); each
	// retry doubles it. Zero means 5 s.
	RetryBase time.Duration
	// AllowPrivate lets targets be http:// and reach loopback, private,
	// link-local and metadata addresses (WEBHOOK_ALLOW_PRIVATE).
	AllowPrivate bool
	Postgres     bool
	Logger       *slog.Logger
	// TracerProvider and MeterProvider record a span per attempt and the
	// delivery metrics.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider

	// Tests of the guard: addresses let through it, and the TLS
	// configuration of the delivery client (their own CA).
	AllowAddr func(netip.AddrPort) bool
	TLSConfig *tls.Config
}

// NewService returns a Service.
func NewService(d Deps) (*Service, error) {
	if err := deps.Require("webhook",
		deps.Of("an Ent client", d.Client != nil),
		deps.Of("a recorder", d.Recorder != nil),
		deps.Of("a clock", d.Clock != nil),
		deps.Of("a pager", d.Pager != nil),
		deps.Of("a secret box", d.Box != nil),
		deps.Of("a tracer provider", d.TracerProvider != nil),
		deps.Of("a meter provider", d.MeterProvider != nil),
	); err != nil {
		return nil, err
	}
	if d.RetryBase <= 0 {
		d.RetryBase = 5 * time.Second
	}
	s := &Service{
		client: d.Client, recorder: d.Recorder, clock: d.Clock, pager: d.Pager, box: d.Box,
		log:       deps.Logger(d.Logger),
		http:      clientOptions{allowPrivate: d.AllowPrivate, allowAddr: d.AllowAddr, tls: d.TLSConfig},
		retryBase: d.RetryBase, postgres: d.Postgres,
		tracer: d.TracerProvider.Tracer("github.com/platform/tenant-registry/internal/webhook"),
	}
	s.hc = newClient(s.http)
	var err error
	if s.metrics, err = newMetrics(d.MeterProvider, s.backlogAge); err != nil {
		return nil, err
	}
	return s, nil
}

// Endpoint is a subscriber, without its secret.
type Endpoint struct {
	ID          uuid.UUID
	URL         string
	Description string
	// EventTypes are the types delivered; empty means all.
	EventTypes []string
	// TenantID, when set, limits the endpoint to that tenant's events.
	TenantID  *uuid.UUID
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
	// PreviousSecretUntil is when the secret replaced by the last rotation
	// stops signing (nil when none signs).
	PreviousSecretUntil *time.Time
	FailingSince        *time.Time
	DisabledAt          *time.Time
}

func endpointOf(r *ent.WebhookEndpoint, now time.Time) *Endpoint {
	e := &Endpoint{
		ID: r.ID, URL: r.URL, Description: r.Description, EventTypes: r.EventTypes, TenantID: r.TenantID,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		FailingSince: r.FailingSince, DisabledAt: r.DisabledAt,
	}
	if r.PreviousSecretUntil != nil && r.PreviousSecretUntil.After(now) {
		e.PreviousSecretUntil = r.PreviousSecretUntil
	}
	return e
}

// CreateInput is a new endpoint.
type CreateInput struct {
	URL         string
	EventTypes  []string
	TenantID    string
	Description string
}

// Created is a new (or rotated) endpoint and its signing secret, which is
// answered here only.
type Created struct {
	Endpoint *Endpoint
	Secret   string
}

// Create adds an endpoint and answers its secret, once. It is audited
// (webhook.endpoint.created) in the tenant's chain when the endpoint is
// limited to a tenant, else in the platform chain; never with the secret.
func (s *Service) Create(ctx context.Context, in CreateInput) (*Created, error) {
	u, err := CheckURL(in.URL, s.http.allowPrivate)
	if err != nil {
		return nil, err
	}
	if err := checkDescription(in.Description); err != nil {
		return nil, err
	}
	types, err := checkEventTypes(in.EventTypes)
	if err != nil {
		return nil, err
	}
	var tenantID *uuid.UUID
	if in.TenantID != "" {
		id, err := ids.ParseTenant("tenant_id", in.TenantID)
		if err != nil {
			return nil, err
		}
		tenantID = &id
	}
	caller, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	id := uuid.New()
	plain := NewSecret()
	sealed, err := s.box.Seal([]byte(plain), aad(id))
	if err != nil {
		return nil, fmt.Errorf("seal webhook secret: %w", err)
	}
	now := s.clock()
	var row *ent.WebhookEndpoint
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		entry, err := s.entry(ctx, tx, tenantID, "webhook.endpoint.created", "c")
		if err != nil {
			return err
		}
		c := tx.WebhookEndpoint.Create().SetID(id).SetURL(u.String()).SetDescription(in.Description).
			SetSecretSealed(sealed).SetCreatedBy(text.Truncate(caller.Subject, 255)).SetCreatedAt(now).SetUpdatedAt(now)
		if len(types) > 0 {
			c.SetEventTypes(types)
		}
		if tenantID != nil {
			c.SetTenantID(*tenantID)
		}
		if row, err = c.Save(ctx); err != nil {
			return fmt.Errorf("create webhook endpoint: %w", err)
		}
		entry.Target = target(row)
		entry.Fields = map[string]string{"url": row.URL, "event_types": strings.Join(types, ",")}
		entry.Description = "webhook endpoint created"
		return s.recorder.Record(ctx, tx, entry)
	})
	if err != nil {
		return nil, err
	}
	return &Created{Endpoint: endpointOf(row, now), Secret: plain}, nil
}

// entry starts the audit entry of a change to an endpoint: in the tenant's
// chain when it is limited to one (which must exist), else the platform's.
func (s *Service) entry(ctx context.Context, tx *ent.Tx, tenantID *uuid.UUID, action, crud string) (audit.Entry, error) {
	e := audit.Entry{Action: action, CRUD: crud}
	if tenantID == nil {
		e.Platform = true
		return e, nil
	}
	t, err := tx.Tenant.Query().Where(enttenant.ID(*tenantID)).Select(enttenant.FieldName).Only(ctx)
	switch {
	case ent.IsNotFound(err):
		return e, errs.Errorf(errs.NotFound, "tenant not found")
	case err != nil:
		return e, fmt.Errorf("read tenant: %w", err)
	}
	e.TenantID, e.TenantName = *tenantID, t.Name
	return e, nil
}

func target(r *ent.WebhookEndpoint) audit.Target {
	return audit.Target{ID: r.ID.String(), Name: text.Truncate(r.URL, audit.MaxNameLen), Type: "webhook_endpoint"}
}

// aad binds a sealed secret to its endpoint (both secret columns).
func aad(id uuid.UUID) []byte { return []byte("webhook_endpoints/" + id.String() + "/secret") }

func checkDescription(d string) error {
	if !utf8.ValidString(d) {
		return errs.Errorf(errs.Invalid, "description: not valid UTF-8")
	}
	if n := utf8.RuneCountInString(d); n > MaxDescriptionLen {
		return errs.Errorf(errs.Invalid, "description: at most %d characters, got %d", MaxDescriptionLen, n)
	}
	if strings.ContainsFunc(d, func(r rune) bool { return r == 0 || (unicode.IsControl(r) && r != '\n' && r != '\t') }) {
		return errs.Errorf(errs.Invalid, "description: must not contain control characters")
	}
	return nil
}

func checkEventTypes(in []string) ([]string, error) {
	if len(in) > MaxEventTypes {
		return nil, errs.Errorf(errs.Invalid, "event_types: at most %d, got %d", MaxEventTypes, len(in))
	}
	out := make([]string, 0, len(in))
	for _, t := range in {
		if err := audit.ValidateAction(t); err != nil {
			return nil, errs.Errorf(errs.Invalid, "event_types: %q: must be an event type (an audit action such as tenant.created)", text.Truncate(t, 140))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Get answers an endpoint.
func (s *Service) Get(ctx context.Context, id string) (*Endpoint, error) {
	row, err := s.byID(ctx, s.client, id)
	if err != nil {
		return nil, err
	}
	return endpointOf(row, s.clock()), nil
}

func (s *Service) byID(ctx context.Context, c *ent.Client, id string) (*ent.WebhookEndpoint, error) {
	uid, err := ids.Parse("id", "an endpoint id", id)
	if err != nil {
		return nil, err
	}
	row, err := c.WebhookEndpoint.Get(ctx, uid)
	if ent.IsNotFound(err) {
		return nil, errs.Errorf(errs.NotFound, "webhook endpoint not found")
	}
	if err != nil {
		return nil, fmt.Errorf("read webhook endpoint: %w", err)
	}
	return row, nil
}

// ListInput pages through endpoints, newest first.
type ListInput struct {
	PageSize int32
	Cursor   string
}

// List answers a page of endpoints.
func (s *Service) List(ctx context.Context, in ListInput) ([]*Endpoint, string, error) {
	req := cursor.Request{Kind: "webhook_endpoints", Cursor: in.Cursor, PageSize: in.PageSize}
	size, after, err := s.pager.Start(req)
	if err != nil {
		return nil, "", err
	}
	q := s.client.WebhookEndpoint.Query().Order(ent.Desc(webhookendpoint.FieldCreatedAt), ent.Desc(webhookendpoint.FieldID)).Limit(size + 1)
	if after != nil {
		q = q.Where(cursor.Before(webhookendpoint.FieldCreatedAt, webhookendpoint.FieldID, *after))
	}
	rows, err := q.All(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook endpoints: %w", err)
	}
	now := s.clock()
	out, next := cursor.Next(s.pager, req, rows, size,
		func(r *ent.WebhookEndpoint) cursor.Position { return cursor.Position{Time: r.CreatedAt, ID: r.ID} },
		func(r *ent.WebhookEndpoint) *Endpoint { return endpointOf(r, now) })
	return out, next, nil
}

// Delete removes an endpoint and its messages (audited).
func (s *Service) Delete(ctx context.Context, id string) (*Endpoint, error) {
	var out *Endpoint
	err := store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		row, err := s.byID(ctx, tx.Client(), id)
		if err != nil {
			return err
		}
		entry, err := s.entryFor(ctx, tx, row, "webhook.endpoint.deleted", "d")
		if err != nil {
			return err
		}
		if err := tx.WebhookEndpoint.DeleteOne(row).Exec(ctx); err != nil {
			return fmt.Errorf("delete webhook endpoint: %w", err)
		}
		entry.Description = "webhook endpoint deleted"
		if err := s.recorder.Record(ctx, tx, entry); err != nil {
			return err
		}
		out = endpointOf(row, s.clock())
		return nil
	})
	return out, err
}

// entryFor is entry for an existing endpoint: a tenant filter whose tenant
// is gone is recorded in the platform chain.
func (s *Service) entryFor(ctx context.Context, tx *ent.Tx, row *ent.WebhookEndpoint, action, crud string) (audit.Entry, error) {
	e, err := s.entry(ctx, tx, row.TenantID, action, crud)
	if errs.CodeOf(err) == errs.NotFound {
		e, err = s.entry(ctx, tx, nil, action, crud)
		e.Fields = map[string]string{"tenant_id": row.TenantID.String()}
	}
	if err != nil {
		return e, err
	}
	e.Target = target(row)
	return e, nil
}

// RotateSecret gives the endpoint a new secret, answered once; the one it
// replaces keeps signing (a second signature) for RotationOverlap.
func (s *Service) RotateSecret(ctx context.Context, id string) (*Created, error) {
	plain := NewSecret()
	var out *Endpoint
	err := store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		row, err := s.byID(ctx, tx.Client(), id)
		if err != nil {
			return err
		}
		sealed, err := s.box.Seal([]byte(plain), aad(row.ID))
		if err != nil {
			return fmt.Errorf("seal webhook secret: %w", err)
		}
		now := s.clock()
		row, err = tx.WebhookEndpoint.UpdateOne(row).
			SetSecretSealed(sealed).SetPreviousSecretSealed(row.SecretSealed).
			SetPreviousSecretUntil(now.Add(RotationOverlap)).SetUpdatedAt(now).Save(ctx)
		if err != nil {
			return fmt.Errorf("rotate webhook secret: %w", err)
		}
		entry, err := s.entryFor(ctx, tx, row, "webhook.endpoint.secret_rotated", "u")
		if err != nil {
			return err
		}
		entry.Description = "webhook endpoint secret rotated; the previous one signs for 24 h"
		if err := s.recorder.Record(ctx, tx, entry); err != nil {
			return err
		}
		out = endpointOf(row, now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Created{Endpoint: out, Secret: plain}, nil
}

// keys opens the endpoint's signing keys: the current secret's and, during
// a rotation's overlap, the previous one's.
func (s *Service) keys(r *ent.WebhookEndpoint, now time.Time) ([][]byte, error) {
	open := func(sealed []byte) ([]byte, error) {
		plain, err := s.box.Open(sealed, aad(r.ID))
		if err != nil {
			return nil, fmt.Errorf("open webhook secret of endpoint %s: %w", r.ID, err)
		}
		return SecretKey(string(plain))
	}
	cur, err := open(r.SecretSealed)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{cur}
	if r.PreviousSecretSealed != nil && r.PreviousSecretUntil != nil && r.PreviousSecretUntil.After(now) {
		prev, err := open(*r.PreviousSecretSealed)
		if err != nil {
			return nil, err
		}
		keys = append(keys, prev)
	}
	return keys, nil
}

// Delivery is a message and its delivery state.
type Delivery struct {
	ID         uuid.UUID
	EndpointID uuid.UUID
	// WebhookID is the webhook-id header of every attempt.
	WebhookID  string
	EventID    uuid.UUID
	EventType  string
	TenantID   *string
	Status     string
	Attempts   int
	LastStatus int
	LastError  string
	// NextAttemptAt is set while the message is pending.
	NextAttemptAt *time.Time
	DeliveredAt   *time.Time
	CreatedAt     time.Time
}

func deliveryOf(r *ent.WebhookMessage) *Delivery {
	d := &Delivery{
		ID: r.ID, EndpointID: r.EndpointID, WebhookID: WebhookID(r.ID), EventID: r.EventID, EventType: r.EventType,
		Status: r.Status, Attempts: r.Attempts, LastStatus: r.LastStatus, LastError: r.LastError,
		DeliveredAt: r.DeliveredAt, CreatedAt: r.CreatedAt,
	}
	if r.GroupID != audit.PlatformGroup {
		g := r.GroupID
		d.TenantID = &g
	}
	if r.Status == StatusPending {
		t := r.NextAttemptAt
		d.NextAttemptAt = &t
	}
	return d
}

// DeliveriesInput pages through an endpoint's deliveries, newest first.
type DeliveriesInput struct {
	EndpointID string
	PageSize   int32
	Cursor     string
}

// Deliveries answers a page of an endpoint's delivery log.
func (s *Service) Deliveries(ctx context.Context, in DeliveriesInput) ([]*Delivery, string, error) {
	ep, err := s.byID(ctx, s.client, in.EndpointID)
	if err != nil {
		return nil, "", err
	}
	req := cursor.Request{Kind: "webhook_deliveries", Scope: []string{ep.ID.String()}, Cursor: in.Cursor, PageSize: in.PageSize}
	size, after, err := s.pager.Start(req)
	if err != nil {
		return nil, "", err
	}
	q := s.client.WebhookMessage.Query().Where(webhookmessage.EndpointID(ep.ID)).
		Order(ent.Desc(webhookmessage.FieldCreatedAt), ent.Desc(webhookmessage.FieldID)).Limit(size + 1)
	if after != nil {
		q = q.Where(cursor.Before(webhookmessage.FieldCreatedAt, webhookmessage.FieldID, *after))
	}
	rows, err := q.All(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook deliveries: %w", err)
	}
	out, next := cursor.Next(s.pager, req, rows, size,
		func(r *ent.WebhookMessage) cursor.Position { return cursor.Position{Time: r.CreatedAt, ID: r.ID} },
		deliveryOf)
	return out, next, nil
}

// Retry makes a delivery due now, failed or pending, with a new retry
// window of GiveUpAfter; a delivered one is a Precondition error. A disabled
// endpoint is enabled again (its failure clock restarts). Audited as
// webhook.delivery.retried.
func (s *Service) Retry(ctx context.Context, endpointID, deliveryID string) (*Delivery, error) {
	did, err := ids.Parse("delivery_id", "a delivery id", deliveryID)
	if err != nil {
		return nil, err
	}
	var out *Delivery
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		ep, err := s.byID(ctx, tx.Client(), endpointID)
		if err != nil {
			return err
		}
		m, err := tx.WebhookMessage.Query().Where(webhookmessage.ID(did), webhookmessage.EndpointID(ep.ID)).Only(ctx)
		if ent.IsNotFound(err) {
			return errs.Errorf(errs.NotFound, "delivery not found")
		}
		if err != nil {
			return fmt.Errorf("read webhook delivery: %w", err)
		}
		if m.Status == StatusDelivered {
			return errs.Errorf(errs.Precondition, "delivery %s was already delivered (HTTP %d): nothing to retry", m.ID, m.LastStatus)
		}
		now := s.clock()
		// Not delivered still: a worker may have recorded the delivery
		// since the read.
		m, err = tx.WebhookMessage.UpdateOne(m).Where(webhookmessage.StatusNEQ(StatusDelivered)).
			SetStatus(StatusPending).SetNextAttemptAt(now).
			SetGiveUpAt(now.Add(GiveUpAfter)).SetUpdatedAt(now).Save(ctx)
		if ent.IsNotFound(err) {
			return errs.Errorf(errs.Precondition, "delivery %s was delivered meanwhile: nothing to retry", did)
		}
		if err != nil {
			return fmt.Errorf("retry webhook delivery: %w", err)
		}
		entry, err := s.entryFor(ctx, tx, ep, "webhook.delivery.retried", "u")
		if err != nil {
			return err
		}
		if entry.Fields == nil {
			entry.Fields = map[string]string{}
		}
		entry.Fields["delivery_id"] = m.ID.String()
		entry.Fields["event_id"] = m.EventID.String()
		if ep.DisabledAt != nil {
			if err := tx.WebhookEndpoint.UpdateOne(ep).ClearDisabledAt().ClearFailingSince().SetUpdatedAt(now).Exec(ctx); err != nil {
				return fmt.Errorf("enable webhook endpoint: %w", err)
			}
			entry.Fields["endpoint_enabled"] = "true"
		}
		entry.Description = "webhook delivery retried"
		if err := s.recorder.Record(ctx, tx, entry); err != nil {
			return err
		}
		out = deliveryOf(m)
		return nil
	})
	return out, err
}
