package audit

import (
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
)

// Event is a stored event as the service answers it (the one result type of
// this package, made from the row by eventOf): Retraced's shape, its chain
// position and hashes, and who appended it.
type Event struct {
	ID        uuid.UUID
	CreatedAt time.Time
	// TenantID is the tenant while it exists (nil once purged); GroupID is
	// the tenant the event belongs to, for ever.
	TenantID                         *uuid.UUID
	GroupID, GroupName               string
	Action, Crud                     string
	ActorID, ActorName, ActorType    string
	TargetID, TargetName, TargetType string
	SourceIP, Description            string
	IsFailure, IsAnonymous           bool
	Fields                           map[string]string
	AppendedByID, AppendedByType     string
	AppendedByTenant                 string
	IdempotencyKey                   *string
	ChainSeq                         int64
	PrevHash, Hash                   string
	HashVersion                      int
}

func eventOf(r *ent.AuditLog) *Event {
	return &Event{
		ID: r.ID, CreatedAt: r.CreatedAt, TenantID: r.TenantID, GroupID: r.GroupID, GroupName: r.GroupName,
		Action: r.Action, Crud: r.Crud, ActorID: r.ActorID, ActorName: r.ActorName, ActorType: r.ActorType,
		TargetID: r.TargetID, TargetName: r.TargetName, TargetType: r.TargetType,
		SourceIP: r.SourceIP, Description: r.Description, IsFailure: r.IsFailure, IsAnonymous: r.IsAnonymous,
		Fields: r.Fields, AppendedByID: r.AppendedByID, AppendedByType: r.AppendedByType, AppendedByTenant: r.AppendedByTenant,
		IdempotencyKey: r.IdempotencyKey, ChainSeq: r.ChainSeq, PrevHash: r.PrevHash, Hash: r.Hash, HashVersion: r.HashVersion,
	}
}
