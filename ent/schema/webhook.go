package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// WebhookEndpoint is a subscriber of the registry's events (internal/webhook):
// where to deliver them, which ones, and its signing secret, sealed with
// IDP_SECRET_KEY (internal/secret). During a rotation the previous secret
// signs too, until previous_secret_until.
type WebhookEndpoint struct{ ent.Schema }

func (WebhookEndpoint) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}} }

func (WebhookEndpoint) Fields() []ent.Field {
	return []ent.Field{
		field.String("url").NotEmpty().MaxRuneLen(2048).SchemaType(varchar(2048)),
		field.String("description").Default("").MaxRuneLen(500).SchemaType(varchar(500)),
		// The event types (audit actions) delivered; empty means all.
		field.JSON("event_types", []string{}).Optional(),
		// Only this tenant's events, when set (no foreign key: a purged
		// tenant's filter matches nothing).
		field.UUID("tenant_id", uuid.UUID{}).Optional().Nillable(),
		field.Bytes("secret_sealed").Sensitive(),
		field.Bytes("previous_secret_sealed").Optional().Nillable().Sensitive(),
		field.Time("previous_secret_until").Optional().Nillable(),
		field.String("created_by").Default("").MaxRuneLen(255).SchemaType(varchar(255)),
		// When deliveries began to fail without a success since.
		field.Time("failing_since").Optional().Nillable(),
		// Set when the endpoint failed for too long: no more deliveries.
		field.Time("disabled_at").Optional().Nillable(),
	}
}

func (WebhookEndpoint) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("messages", WebhookMessage.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
	}
}

func (WebhookEndpoint) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("created_at", "id"),
	}
}

func (WebhookEndpoint) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("webhook_endpoints")}
}

// WebhookMessage is one event to deliver to one endpoint, written in the
// transaction of the change it reports (the webhook outbox) and its
// delivery log: status, attempts, the last answer. Messages of one endpoint
// and group (tenant) are delivered in chain_seq order, the order in which
// the group's audit events committed.
type WebhookMessage struct{ ent.Schema }

func (WebhookMessage) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}} }

func (WebhookMessage) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("endpoint_id", uuid.UUID{}).Immutable(),
		// The audit event's group (tenant id, lower case) and its position
		// in the group's chain.
		field.String("group_id").MaxRuneLen(36).SchemaType(varchar(36)).Immutable(),
		field.Int64("chain_seq").Immutable(),
		field.UUID("event_id", uuid.UUID{}).Immutable(),
		field.String("event_type").MaxRuneLen(128).SchemaType(varchar(128)).Immutable(),
		// The body, exactly as delivered and signed on every attempt.
		field.Bytes("payload").Immutable(),
		// pending, delivered or failed.
		field.String("status").Default("pending").MaxRuneLen(16).SchemaType(varchar(16)),
		field.Int("attempts").Default(0).NonNegative(),
		field.Time("next_attempt_at"),
		// After this, a failed attempt gives up: the message is failed.
		field.Time("give_up_at"),
		field.Time("locked_until").Optional().Nillable(),
		field.UUID("lease_token", uuid.UUID{}).Optional().Nillable(),
		field.Int("last_status").Default(0),
		field.String("last_error").Default("").MaxRuneLen(2000).SchemaType(varchar(2000)),
		field.Time("delivered_at").Optional().Nillable(),
	}
}

func (WebhookMessage) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("endpoint", WebhookEndpoint.Type).Ref("messages").Field("endpoint_id").Unique().Required().Immutable(),
	}
}

func (WebhookMessage) Indexes() []ent.Index {
	return []ent.Index{
		// One message per event and endpoint; the order of an endpoint's
		// queue per group.
		index.Fields("endpoint_id", "group_id", "chain_seq").Unique(),
		// The worker's scan: pending messages by due time.
		index.Fields("next_attempt_at").Annotations(entsql.IndexWhere("status = 'pending'")),
		// The delivery log, newest first.
		index.Fields("endpoint_id", "created_at", "id"),
	}
}

func (WebhookMessage) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Table("webhook_messages"),
		entsql.Checks(map[string]string{
			"webhook_messages_status": "status IN ('pending', 'delivered', 'failed')",
		}),
	}
}
