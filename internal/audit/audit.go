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
	"github.com/platform/tenant-registry/internal/deps"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/principal"
)

// Target is what an event was done to.
type Target struct{ ID, Name, Type string }

// Entry is an event to record. The actor and source IP come from the
// context (the caller) unless Actor is set.
type Entry struct {
	Action      string // noun.verb
	CRUD        string // c, r, u or d
	TenantID    uuid.UUID
	TenantName  string
	Target      Target
	Description string
	IsFailure   bool
	Fields      map[string]string
	// Actor overrides the caller taken from the context.
	Actor *principal.Principal
	// SourceIP overrides the caller's address taken from the context.
	SourceIP       string
	IdempotencyKey string
	// AppendedBy is the authenticated appender (AppendEvent's caller); nil
	// for the service's own events, whose appender is the system.
	AppendedBy *principal.Principal
	// Platform records an event about no tenant (a webhook endpoint
	// without a tenant filter, say) in the platform chain: group
	// PlatformGroup, no tenant_id. TenantID must then be unset.
	Platform bool
	// Resource is the changed resource as the API answers it (JSON), when
	// the change supplies it: webhook messages carry it as data.resource.
	// It is not stored in the audit log.
	Resource []byte
}

// PlatformGroup is the group of events about no tenant (Entry.Platform):
// the nil UUID, a chain of its own that platform admins read with
// tenant_id=00000000-0000-0000-0000-000000000000.
const PlatformGroup = "00000000-0000-0000-0000-000000000000"

// Events is told of every event the service records for its own changes,
// inside the change's transaction: internal/webhook enqueues the event's
// webhook messages there, so there is no message without its change and no
// change without its message. An error rolls the change back.
type Events interface {
	Recorded(ctx context.Context, tx *ent.Tx, ev *ent.AuditLog, resource []byte) error
}

// Recorder writes events.
type Recorder struct {
	clock    clock.Clock
	postgres bool
	events   Events
}

// RecorderDeps are what a Recorder needs; Clock is required.
type RecorderDeps struct {
	Clock clock.Clock
	// Postgres: the store is PostgreSQL, where writers of one chain are
	// serialised with a transaction-scoped advisory lock (SQLite
	// serialises all writers anyway).
	Postgres bool
	// Events, when set, is told of every state change recorded (see
	// Events): the service's own events except reads (crud "r"). Events
	// appended through AppendEvent are a product's, not the registry's
	// changes, and are not passed on. nil sends nothing (tests of other
	// packages).
	Events Events
}

// NewRecorder returns a Recorder.
func NewRecorder(d RecorderDeps) (*Recorder, error) {
	if err := deps.Require("audit", deps.Of("a clock", d.Clock != nil)); err != nil {
		return nil, err
	}
	return &Recorder{clock: d.Clock, postgres: d.Postgres, events: d.Events}, nil
}

// Record writes e in tx, chained to its group's previous event. Every event
// belongs to a tenant (its group): there is no event beside a chain.
func (r *Recorder) Record(ctx context.Context, tx *ent.Tx, e Entry) error {
	_, err := r.write(ctx, tx, e)
	return err
}

// write is Record, answering the row.
func (r *Recorder) write(ctx context.Context, tx *ent.Tx, e Entry) (*ent.AuditLog, error) {
	rows, err := r.writeBatch(ctx, tx, []Entry{e}, false)
	if err != nil {
		return nil, err
	}
	return rows[0], nil
}

// writeBatch writes es, all of one group, in tx as consecutive links of the
// group's chain, in order: one lock (unless the caller holds it already:
// locked), one read of the chain head and one INSERT for the lot. It
// answers the rows in es's order.
func (r *Recorder) writeBatch(ctx context.Context, tx *ent.Tx, es []Entry, locked bool) ([]*ent.AuditLog, error) {
	if len(es) == 0 {
		return nil, nil
	}
	groupID := es[0].TenantID.String() // PlatformGroup for a platform event
	for _, e := range es {
		switch {
		case e.Platform && e.TenantID != uuid.Nil:
			return nil, fmt.Errorf("write audit event %s: a platform event names no tenant", e.Action)
		case !e.Platform && e.TenantID == uuid.Nil:
			return nil, fmt.Errorf("write audit event %s: no tenant", e.Action)
		case e.TenantID.String() != groupID:
			return nil, fmt.Errorf("write audit event %s: a batch is of one group", e.Action)
		}
	}
	if r.postgres && !locked {
		// Appends to one chain queue up here until the holder commits.
		if err := lockChain(ctx, tx, groupID); err != nil {
			return nil, err
		}
	}
	prevSeq, prevHash, err := chainHead(ctx, tx, groupID)
	if err != nil {
		return nil, err
	}
	creates := make([]*ent.AuditLogCreate, len(es))
	for i, e := range es {
		var actor principal.Principal
		if e.Actor != nil {
			actor = *e.Actor
		} else if actor, err = principal.Require(ctx); err != nil {
			return nil, fmt.Errorf("write audit event %s: %w", e.Action, err)
		}
		appender := principal.System
		if e.AppendedBy != nil {
			appender = *e.AppendedBy
		}
		sourceIP := e.SourceIP
		if sourceIP == "" {
			sourceIP = principal.SourceIP(ctx)
		}
		ev := Canonical{
			Version:          CanonicalVersion,
			ID:               uuid.New().String(),
			CreatedAt:        r.clock().UTC(),
			Action:           e.Action,
			CRUD:             e.CRUD,
			GroupID:          groupID,
			GroupName:        e.TenantName,
			ActorID:          actor.Subject,
			ActorName:        actor.Name,
			ActorType:        string(actor.Type),
			TargetID:         e.Target.ID,
			TargetName:       e.Target.Name,
			TargetType:       e.Target.Type,
			SourceIP:         sourceIP,
			Description:      e.Description,
			IsFailure:        e.IsFailure,
			IsAnonymous:      actor.Anonymous,
			Fields:           e.Fields,
			IdempotencyKey:   e.IdempotencyKey,
			ChainSeq:         prevSeq + 1,
			AppendedByID:     appender.Subject,
			AppendedByType:   string(appender.Type),
			AppendedByTenant: ids.Canonical(appender.TenantID),
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
			SetAppendedByID(ev.AppendedByID).
			SetAppendedByType(ev.AppendedByType).
			SetAppendedByTenant(ev.AppendedByTenant).
			SetChainSeq(ev.ChainSeq).
			SetPrevHash(prevHash).
			SetHash(hash).
			SetHashVersion(ev.Version)
		if !e.Platform {
			create.SetTenantID(e.TenantID)
		}
		if len(e.Fields) > 0 {
			create.SetFields(e.Fields)
		}
		if e.IdempotencyKey != "" {
			create.SetIdempotencyKey(e.IdempotencyKey)
		}
		creates[i] = create
		prevSeq, prevHash = ev.ChainSeq, hash
	}
	rows, err := tx.AuditLog.CreateBulk(creates...).Save(ctx)
	if err != nil {
		if len(es) == 1 {
			return nil, fmt.Errorf("write audit event %s: %w", es[0].Action, err)
		}
		return nil, fmt.Errorf("write %d audit events: %w", len(es), err)
	}
	for i, e := range es {
		if r.events != nil && e.AppendedBy == nil && e.CRUD != "r" {
			if err := r.events.Recorded(ctx, tx, rows[i], e.Resource); err != nil {
				return nil, fmt.Errorf("audit event %s: %w", e.Action, err)
			}
		}
	}
	return rows, nil
}

// chainHead reads the chain_seq and hash of the group's newest event: the
// link the next event chains to.
func chainHead(ctx context.Context, tx *ent.Tx, groupID string) (int64, string, error) {
	last, err := tx.AuditLog.Query().
		Where(auditlog.GroupID(groupID)).
		Order(ent.Desc(auditlog.FieldChainSeq)).
		Select(auditlog.FieldChainSeq, auditlog.FieldHash).
		First(ctx)
	switch {
	case ent.IsNotFound(err):
		// Nothing left (or ever written): chain on from the retention
		// sweeper's checkpoint, if it deleted the group's events.
		return latestCheckpoint(ctx, tx.Client(), groupID)
	case err != nil:
		return 0, "", fmt.Errorf("read audit chain head: %w", err)
	}
	return last.ChainSeq, last.Hash, nil
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

// CanonicalVersion is the version of the canonical form new events are
// hashed in (the row's hash_version).
const CanonicalVersion = 2

// Canonical is the form of an event that its hash covers:
//
//	hash = hex(SHA-256(prev_hash ‖ JSON))
//
// where JSON is, for hash_version 2 (every event written since appenders
// are recorded):
//
//	{"v":2,"id":…,"created_at":…,"action":…,"crud":…,"group_id":…,
//	 "group_name":…,"actor_id":…,"actor_name":…,"actor_type":…,
//	 "target_id":…,"target_name":…,"target_type":…,"source_ip":…,
//	 "description":…,"is_failure":…,"is_anonymous":…,"fields":{…}|null,
//	 "idempotency_key":…,"chain_seq":…,"appended_by_id":…,
//	 "appended_by_type":…,"appended_by_tenant":…}
//
// and for hash_version 1 (older events) the same without "v" and the three
// appended_by keys. Keys are in this order (encoding/json sorts the
// fields' map keys), times are RFC 3339 UTC with microsecond precision,
// and empty fields are null, so the same event always encodes the same.
// tenant_id is not covered (the purge sets it NULL): group_id is, and the
// database keeps tenant_id equal to group_id or NULL.
type Canonical struct {
	// Version is the canonical form's version: 1 or 2.
	Version        int
	ID             string
	CreatedAt      time.Time
	Action         string
	CRUD           string
	GroupID        string
	GroupName      string
	ActorID        string
	ActorName      string
	ActorType      string
	TargetID       string
	TargetName     string
	TargetType     string
	SourceIP       string
	Description    string
	IsFailure      bool
	IsAnonymous    bool
	Fields         map[string]string
	IdempotencyKey string
	ChainSeq       int64
	// The appender (version 2 on).
	AppendedByID, AppendedByType, AppendedByTenant string
}

// canonicalV1 is the JSON of hash_version 1.
type canonicalV1 struct {
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

// canonicalV2 is the JSON of hash_version 2: the version first, then
// version 1's keys, then the appender.
type canonicalV2 struct {
	V int `json:"v"`
	canonicalV1
	AppendedByID     string `json:"appended_by_id"`
	AppendedByType   string `json:"appended_by_type"`
	AppendedByTenant string `json:"appended_by_tenant"`
}

// Hash returns hex(SHA-256(prevHash ‖ canonical JSON)) in c's version. An
// unknown version hashes to "" (which never matches a stored hash).
func (c Canonical) Hash(prevHash string) string {
	fields := c.Fields
	if len(fields) == 0 {
		fields = nil
	}
	v1 := canonicalV1{
		ID: c.ID, CreatedAt: c.CreatedAt.UTC().Truncate(time.Microsecond), Action: c.Action, CRUD: c.CRUD,
		GroupID: c.GroupID, GroupName: c.GroupName,
		ActorID: c.ActorID, ActorName: c.ActorName, ActorType: c.ActorType,
		TargetID: c.TargetID, TargetName: c.TargetName, TargetType: c.TargetType,
		SourceIP: c.SourceIP, Description: c.Description,
		IsFailure: c.IsFailure, IsAnonymous: c.IsAnonymous, Fields: fields,
		IdempotencyKey: c.IdempotencyKey, ChainSeq: c.ChainSeq,
	}
	var doc any
	switch c.Version {
	case 1:
		doc = v1
	case 2:
		doc = canonicalV2{V: 2, canonicalV1: v1,
			AppendedByID: c.AppendedByID, AppendedByType: c.AppendedByType, AppendedByTenant: c.AppendedByTenant}
	default:
		return ""
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err) // strings, bools, ints and a time: cannot fail
	}
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// CanonicalOf rebuilds the canonical form of a stored event, in the
// version it was hashed in.
func CanonicalOf(row *ent.AuditLog) Canonical {
	c := Canonical{
		Version: row.HashVersion,
		ID:      row.ID.String(), CreatedAt: row.CreatedAt, Action: row.Action, CRUD: row.Crud,
		GroupID: row.GroupID, GroupName: row.GroupName,
		ActorID: row.ActorID, ActorName: row.ActorName, ActorType: row.ActorType,
		TargetID: row.TargetID, TargetName: row.TargetName, TargetType: row.TargetType,
		SourceIP: row.SourceIP, Description: row.Description,
		IsFailure: row.IsFailure, IsAnonymous: row.IsAnonymous, Fields: row.Fields,
		ChainSeq:     row.ChainSeq,
		AppendedByID: row.AppendedByID, AppendedByType: row.AppendedByType, AppendedByTenant: row.AppendedByTenant,
	}
	if row.IdempotencyKey != nil {
		c.IdempotencyKey = *row.IdempotencyKey
	}
	return c
}
