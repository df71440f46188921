// Package audit writes and reads the Retraced-shaped audit log. Every change
// records its event through Recorder.Record inside the change's own
// transaction, so there is no change without its event and no event without
// its change. Each group's (tenant's) events form a hash chain.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/internal/registry"
)

// Target is what an event was done to.
type Target struct{ ID, Name, Type string }

// Event is an event to record. The actor and source IP come from the
// context (the caller) unless Actor is set.
type Event struct {
	Action      string // noun.verb
	CRUD        string // c, r, u or d
	TenantID    uuid.UUID
	TenantName  string
	Target      Target
	Description string
	IsFailure   bool
	Fields      map[string]string
	// Actor overrides the caller taken from the context.
	Actor *registry.Principal
	// SourceIP overrides the caller's address taken from the context.
	SourceIP       string
	IdempotencyKey string
}

// Recorder writes events.
type Recorder struct {
	clock    registry.Clock
	postgres bool
}

// NewRecorder returns a Recorder. On PostgreSQL it serialises writers of one
// chain with a transaction-scoped advisory lock; SQLite serialises all
// writers anyway.
func NewRecorder(clock registry.Clock, postgres bool) *Recorder {
	return &Recorder{clock: clock, postgres: postgres}
}

// Record writes e in tx, chained to its group's previous event.
func (r *Recorder) Record(ctx context.Context, tx *ent.Tx, e Event) (*ent.AuditLog, error) {
	actor := registry.PrincipalFrom(ctx)
	if e.Actor != nil {
		actor = *e.Actor
	}
	sourceIP := e.SourceIP
	if sourceIP == "" {
		sourceIP = registry.SourceIPFrom(ctx)
	}
	groupID := ""
	if e.TenantID != uuid.Nil {
		groupID = e.TenantID.String()
	}
	if r.postgres {
		// Appends to one chain queue up here until the holder commits.
		if err := lockChain(ctx, tx, groupID); err != nil {
			return nil, err
		}
	}
	prevSeq, prevHash := int64(0), ""
	last, err := tx.AuditLog.Query().
		Where(auditlog.GroupID(groupID), auditlog.ChainSeqNotNil()).
		Order(ent.Desc(auditlog.FieldChainSeq)).
		Select(auditlog.FieldChainSeq, auditlog.FieldHash).
		First(ctx)
	switch {
	case ent.IsNotFound(err):
		// Nothing left (or ever written): chain on from the retention
		// sweeper's checkpoint, if it deleted the group's events.
		if prevSeq, prevHash, err = latestCheckpoint(ctx, tx.Client(), groupID); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read audit chain head: %w", err)
	default:
		prevSeq, prevHash = *last.ChainSeq, last.Hash
	}
	ev := Canonical{
		ID:             uuid.New().String(),
		CreatedAt:      r.clock().UTC(),
		Action:         e.Action,
		CRUD:           e.CRUD,
		GroupID:        groupID,
		GroupName:      e.TenantName,
		ActorID:        actor.Subject,
		ActorName:      actor.Name,
		ActorType:      string(actor.Type),
		TargetID:       e.Target.ID,
		TargetName:     e.Target.Name,
		TargetType:     e.Target.Type,
		SourceIP:       sourceIP,
		Description:    e.Description,
		IsFailure:      e.IsFailure,
		IsAnonymous:    actor.Anonymous,
		Fields:         e.Fields,
		IdempotencyKey: e.IdempotencyKey,
		ChainSeq:       prevSeq + 1,
	}
	hash := ev.Hash(prevHash)
	create := tx.AuditLog.Create().
		SetID(uuid.MustParse(ev.ID)).
		SetCreatedAt(ev.CreatedAt).
		SetGroupID(groupID).
		SetGroupName(ev.GroupName).
		SetAction(ev.Action).
		SetCrud(ev.CRUD).
		SetActorID(ev.ActorID).
		SetActorName(ev.ActorName).
		SetActorType(ev.ActorType).
		SetTargetID(ev.TargetID).
		SetTargetName(ev.TargetName).
		SetTargetType(ev.TargetType).
		SetSourceIP(ev.SourceIP).
		SetDescription(ev.Description).
		SetIsFailure(ev.IsFailure).
		SetIsAnonymous(ev.IsAnonymous).
		SetChainSeq(ev.ChainSeq).
		SetPrevHash(prevHash).
		SetHash(hash)
	if e.TenantID != uuid.Nil {
		create.SetTenantID(e.TenantID)
	}
	if len(e.Fields) > 0 {
		create.SetFields(e.Fields)
	}
	if e.IdempotencyKey != "" {
		create.SetIdempotencyKey(e.IdempotencyKey)
	}
	row, err := create.Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("write audit event %s: %w", e.Action, err)
	}
	return row, nil
}

// lockChain takes the PostgreSQL transaction-scoped advisory lock of a
// group's chain: appends (and the retention sweeper) of one chain queue up
// on it until the holder's transaction ends.
func lockChain(ctx context.Context, tx *ent.Tx, groupID string) error {
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 7351))", "audit:"+groupID); err != nil {
		return fmt.Errorf("lock audit chain: %w", err)
	}
	return nil
}

// Canonical is the form of an event that its hash covers. Field order is
// fixed by this struct, map keys are sorted by encoding/json, and times are
// UTC with microsecond precision, so the same event always encodes the same.
type Canonical struct {
	ID             string            `json:"id"`
	CreatedAt      time.Time         `json:"created_at"`
	Action         string            `json:"action"`
	CRUD           string            `json:"crud"`
	GroupID        string            `json:"group_id"`
	GroupName      string            `json:"group_name"`
	ActorID        string            `json:"actor_id"`
	ActorName      string            `json:"actor_name"`
	ActorType      string            `json:"actor_type"`
	TargetID       string            `json:"target_id"`
	TargetName     string            `json:"target_name"`
	TargetType     string            `json:"target_type"`
	SourceIP       string            `json:"source_ip"`
	Description    string            `json:"description"`
	IsFailure      bool              `json:"is_failure"`
	IsAnonymous    bool              `json:"is_anonymous"`
	Fields         map[string]string `json:"fields"`
	IdempotencyKey string            `json:"idempotency_key"`
	ChainSeq       int64             `json:"chain_seq"`
}

// Hash returns hex(SHA-256(prevHash ‖ canonical JSON)).
func (c Canonical) Hash(prevHash string) string {
	c.CreatedAt = c.CreatedAt.UTC().Truncate(time.Microsecond)
	if len(c.Fields) == 0 {
		c.Fields = nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // strings, bools, ints and a time: cannot fail
	}
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// CanonicalOf rebuilds the canonical form of a stored event.
func CanonicalOf(row *ent.AuditLog) Canonical {
	c := Canonical{
		ID: row.ID.String(), CreatedAt: row.CreatedAt, Action: row.Action, CRUD: row.Crud,
		GroupID: row.GroupID, GroupName: row.GroupName,
		ActorID: row.ActorID, ActorName: row.ActorName, ActorType: row.ActorType,
		TargetID: row.TargetID, TargetName: row.TargetName, TargetType: row.TargetType,
		SourceIP: row.SourceIP, Description: row.Description,
		IsFailure: row.IsFailure, IsAnonymous: row.IsAnonymous, Fields: row.Fields,
	}
	if row.IdempotencyKey != nil {
		c.IdempotencyKey = *row.IdempotencyKey
	}
	if row.ChainSeq != nil {
		c.ChainSeq = *row.ChainSeq
	}
	return c
}
