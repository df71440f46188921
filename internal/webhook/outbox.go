package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/webhookendpoint"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/deps"
)

// Message statuses.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// GiveUpAfter is how long a message is retried before it is failed.
const GiveUpAfter = 72 * time.Hour

// Outbox turns recorded audit events into webhook messages, one per
// subscribed endpoint, in the event's own transaction (it is the audit
// Recorder's audit.Events).
type Outbox struct {
	clock     clock.Clock
	resources ResourceReader
}

// ResourceReader reads the resource an audit event's target names, as the
// API answers it (JSON), through the change's transaction: the messages'
// data.resource. Nil with a nil error when it has none (a type the API
// does not serve, a resource the change deleted).
type ResourceReader interface {
	Resource(ctx context.Context, client *ent.Client, targetType, targetID string) ([]byte, error)
}

// OutboxDeps are what an Outbox needs; Clock is required.
type OutboxDeps struct {
	Clock clock.Clock
	// Resources fills data.resource; nil leaves it out.
	Resources ResourceReader
}

// NewOutbox returns an Outbox.
func NewOutbox(d OutboxDeps) (*Outbox, error) {
	if err := deps.Require("webhook outbox", deps.Of("a clock", d.Clock != nil)); err != nil {
		return nil, err
	}
	return &Outbox{clock: d.Clock, resources: d.Resources}, nil
}

var _ audit.Events = (*Outbox)(nil)

// Recorded enqueues ev for every endpoint that subscribes to it: not
// disabled, its event types empty or naming ev's action, its tenant filter
// empty or ev's tenant (platform events go to endpoints without a filter).
// Without subscribers it costs one indexed read of the endpoints.
func (o *Outbox) Recorded(ctx context.Context, tx *ent.Tx, ev *ent.AuditLog, resource []byte) error {
	q := tx.WebhookEndpoint.Query().Where(webhookendpoint.DisabledAtIsNil())
	if ev.GroupID == audit.PlatformGroup {
		q = q.Where(webhookendpoint.TenantIDIsNil())
	} else {
		group, err := uuid.Parse(ev.GroupID)
		if err != nil {
			return fmt.Errorf("webhook: event group %q: %w", ev.GroupID, err)
		}
		q = q.Where(webhookendpoint.Or(webhookendpoint.TenantIDIsNil(), webhookendpoint.TenantID(group)))
	}
	eps, err := q.Select(webhookendpoint.FieldEventTypes).All(ctx)
	if err != nil {
		return fmt.Errorf("webhook: read endpoints: %w", err)
	}
	var to []uuid.UUID
	for _, ep := range eps {
		if len(ep.EventTypes) == 0 || slices.Contains(ep.EventTypes, ev.Action) {
			to = append(to, ep.ID)
		}
	}
	if len(to) == 0 {
		return nil
	}
	if len(resource) == 0 && o.resources != nil && ev.TargetID != "" {
		if resource, err = o.resources.Resource(ctx, tx.Client(), ev.TargetType, ev.TargetID); err != nil {
			return fmt.Errorf("webhook: read the %s resource of %s: %w", ev.TargetType, ev.Action, err)
		}
	}
	body, err := Body(ev, resource)
	if err != nil {
		return err
	}
	now := o.clock()
	creates := make([]*ent.WebhookMessageCreate, len(to))
	for i, ep := range to {
		creates[i] = tx.WebhookMessage.Create().
			SetID(uuid.New()).SetEndpointID(ep).
			SetGroupID(ev.GroupID).SetChainSeq(ev.ChainSeq).
			SetEventID(ev.ID).SetEventType(ev.Action).
			SetPayload(body).
			SetNextAttemptAt(now).SetGiveUpAt(now.Add(GiveUpAfter)).
			SetCreatedAt(now).SetUpdatedAt(now)
	}
	if err := tx.WebhookMessage.CreateBulk(creates...).Exec(ctx); err != nil {
		return fmt.Errorf("webhook: enqueue %s: %w", ev.Action, err)
	}
	return nil
}

// Payload is a delivery's body: {"type", "timestamp", "data"}.
type Payload struct {
	// Type is the event type: the audit action (tenant.created, …).
	Type string `json:"type"`
	// Timestamp is when the change happened (the audit event's time).
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is what a message says about the change: the audit event that
// records it (its id, tenant, actor, target, fields) and, when the change
// supplies it, the resource after the change as the API answers it.
type Data struct {
	EventID string `json:"event_id"`
	// TenantID is null for platform events (audit.PlatformGroup).
	TenantID    *string           `json:"tenant_id"`
	TenantName  string            `json:"tenant_name,omitempty"`
	Action      string            `json:"action"`
	CRUD        string            `json:"crud"`
	Actor       Party             `json:"actor"`
	Target      Party             `json:"target"`
	Description string            `json:"description,omitempty"`
	Fields      map[string]string `json:"fields,omitempty"`
	IsFailure   bool              `json:"is_failure,omitempty"`
	// ChainSeq is the event's position in its tenant's audit chain: the
	// order in which the tenant's changes committed.
	ChainSeq int64           `json:"chain_seq"`
	Resource json.RawMessage `json:"resource,omitempty"`
}

// Party is an actor or a target.
type Party struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	Type string `json:"type,omitempty"`
}

// Body returns the JSON body of ev's messages.
func Body(ev *ent.AuditLog, resource []byte) ([]byte, error) {
	d := Data{
		EventID: ev.ID.String(), Action: ev.Action, CRUD: ev.Crud,
		Actor:       Party{ID: ev.ActorID, Name: ev.ActorName, Type: ev.ActorType},
		Target:      Party{ID: ev.TargetID, Name: ev.TargetName, Type: ev.TargetType},
		Description: ev.Description, Fields: ev.Fields, IsFailure: ev.IsFailure, ChainSeq: ev.ChainSeq,
	}
	if ev.GroupID != audit.PlatformGroup {
		g := ev.GroupID
		d.TenantID, d.TenantName = &g, ev.GroupName
	}
	if len(resource) > 0 {
		if !json.Valid(resource) {
			return nil, fmt.Errorf("webhook: %s: the resource is not JSON", ev.Action)
		}
		d.Resource = resource
	}
	b, err := json.Marshal(Payload{Type: ev.Action, Timestamp: ev.CreatedAt.UTC(), Data: d})
	if err != nil {
		return nil, fmt.Errorf("webhook: encode %s: %w", ev.Action, err)
	}
	return b, nil
}

// WebhookID is the webhook-id of a message: stable across its attempts.
func WebhookID(messageID uuid.UUID) string { return "msg_" + messageID.String() }
