package audit

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/text"
)

// Limits of an appended event. Lengths are in characters, as the columns
// are sized (varchar(n) on PostgreSQL) and Ent's validators count; no string
// may hold a NUL, and ids, names and types no control characters at all.
//
//	action            3..128, "noun.verb": lower-case segments of a-z 0-9 _ -
//	                  joined by dots, at least two segments ("tenant.created",
//	                  "api_key.scope.changed")
//	crud              c, r, u or d
//	actor.id          required, ≤ 255
//	actor.name        ≤ 255
//	actor.type        user (the default), service or system; a tenant's own
//	                  callers (IT_ADMIN) append user actors only
//	target.id, .name  ≤ 255 each
//	target.type       ≤ 64
//	description       ≤ 2000 (line breaks and tabs allowed)
//	fields            ≤ 50 entries; key 1..64 of A-Z a-z 0-9 _ . -; value ≤ 1024
//	source_ip         empty or an IPv4/IPv6 address (no zone)
//	idempotency_key   ≤ 128 printable ASCII characters, no spaces
//	tenant_id         a UUID; see AppendInput for who may name one
const (
	MinActionLen      = 3
	MaxActionLen      = 128
	MaxIDLen          = 255
	MaxNameLen        = 255
	MaxTypeLen        = 64
	MaxDescriptionLen = 2000
	MaxFields         = 50
	MaxFieldKeyLen    = 64
	MaxFieldValueLen  = 1024
	MaxIdempotencyLen = 128
)

// Actor is who did it.
type Actor struct{ ID, Name, Type string }

// AppendInput is a product's own event.
//
// The group (tenant) is the caller's own tenant when the caller belongs to
// one: naming another tenant is "not found". A platform admin, a service
// (role tenant-registry-internal) or the system must name tenant_id, and
// the tenant must exist.
type AppendInput struct {
	TenantID    string
	Action      string
	CRUD        string
	Actor       Actor
	Target      Target
	Description string
	Fields      map[string]string
	// SourceIP is the actor's address as the product saw it; empty leaves
	// the event without one (the product's own address is not the actor's).
	SourceIP    string
	IsFailure   bool
	IsAnonymous bool
	// IdempotencyKey, when set, makes the append idempotent for its
	// appender (the authenticated caller) within the group: the same
	// appender appending the same key with the same content again stores
	// nothing and returns the event stored first; the same key with other
	// content is a Conflict. Another appender's keys are never seen.
	IdempotencyKey string
}

// Append validates in and appends it to the group's hash chain. Every bad
// field is an Invalid error whose message starts with the field's name.
// The event records its authenticated appender, the caller in ctx.
func (s *Service) Append(ctx context.Context, in AppendInput) (*Event, error) {
	row, err := s.append(ctx, in)
	if err != nil {
		return nil, err
	}
	return eventOf(row), nil
}

func (s *Service) append(ctx context.Context, in AppendInput) (*ent.AuditLog, error) {
	if err := validateAppend(&in); err != nil {
		return nil, err
	}
	caller, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	if caller.TenantID != "" && in.Actor.Type != string(principal.ActorUser) {
		// A tenant's users speak for people of their tenant, never for a
		// service or the system.
		return nil, errs.Errorf(errs.Forbidden, "actor.type: a tenant's users may append events of user actors only, not %s", in.Actor.Type)
	}
	groupID, err := scope(ctx, in.TenantID, false)
	if err != nil {
		return nil, err
	}
	appender := principal.Principal{Subject: caller.Subject, Name: caller.Name, Type: caller.Type, TenantID: ids.Canonical(caller.TenantID)}
	if in.IdempotencyKey != "" {
		// The common repeat costs one read; the unique index still decides
		// races below.
		if row, err := s.byIdempotencyKey(ctx, groupID, appender, in); err != nil || row != nil {
			return row, err
		}
	}
	actor := principal.Principal{Subject: in.Actor.ID, Name: in.Actor.Name, Type: principal.ActorType(in.Actor.Type), Anonymous: in.IsAnonymous}
	// Committed with the other appends to the group arriving meanwhile
	// (group commit, see committer): answered after the commit.
	return s.submit(&appendReq{ctx: ctx, in: in, groupID: groupID, appender: appender, actor: actor})
}

// byIdempotencyKey returns the event appender already appended to the group
// under in's key: nil when there is none, a Conflict when its content is not
// in's.
func (s *Service) byIdempotencyKey(ctx context.Context, groupID string, appender principal.Principal, in AppendInput) (*ent.AuditLog, error) {
	row, err := s.client.AuditLog.Query().
		Where(auditlog.GroupID(groupID),
			auditlog.AppendedByType(string(appender.Type)), auditlog.AppendedByID(appender.Subject),
			auditlog.IdempotencyKey(in.IdempotencyKey)).
		Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit event by idempotency key: %w", err)
	}
	if field := differs(row, in); field != "" {
		return nil, errs.Errorf(errs.Conflict,
			"idempotency_key: %q was already used for a different event (%s differs from event %s)", in.IdempotencyKey, field, row.ID)
	}
	return row, nil
}

// differs names the first field in which a stored event and an append of
// the same idempotency key differ, or returns "" when they are the same
// event. (in is validated: its actor type and source IP are normalised as
// stored.)
func differs(row *ent.AuditLog, in AppendInput) string {
	for _, f := range []struct {
		name           string
		stored, wanted string
	}{
		{"action", row.Action, in.Action},
		{"crud", row.Crud, in.CRUD},
		{"actor.id", row.ActorID, in.Actor.ID},
		{"actor.name", row.ActorName, in.Actor.Name},
		{"actor.type", row.ActorType, in.Actor.Type},
		{"target.id", row.TargetID, in.Target.ID},
		{"target.name", row.TargetName, in.Target.Name},
		{"target.type", row.TargetType, in.Target.Type},
		{"description", row.Description, in.Description},
		{"source_ip", row.SourceIP, in.SourceIP},
	} {
		if f.stored != f.wanted {
			return f.name
		}
	}
	switch {
	case row.IsFailure != in.IsFailure:
		return "is_failure"
	case row.IsAnonymous != in.IsAnonymous:
		return "is_anonymous"
	case !maps.Equal(row.Fields, in.Fields):
		return "fields"
	}
	return ""
}

func validateAppend(in *AppendInput) error {
	invalid := func(format string, args ...any) error { return errs.Errorf(errs.Invalid, format, args...) }
	if in.TenantID != "" {
		if _, err := ids.ParseTenant("tenant_id", in.TenantID); err != nil {
			return err
		}
	}
	if err := ValidateAction(in.Action); err != nil {
		return err
	}
	switch in.CRUD {
	case "c", "r", "u", "d":
	case "":
		return invalid("crud: required (c, r, u or d)")
	default:
		return invalid("crud: must be c, r, u or d")
	}
	if in.Actor.ID == "" {
		return invalid("actor.id: required")
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"actor.id", in.Actor.ID, MaxIDLen},
		{"actor.name", in.Actor.Name, MaxNameLen},
		{"target.id", in.Target.ID, MaxIDLen},
		{"target.name", in.Target.Name, MaxNameLen},
		{"target.type", in.Target.Type, MaxTypeLen},
	} {
		if err := checkText(f.name, f.value, f.max, false); err != nil {
			return err
		}
	}
	switch in.Actor.Type {
	case "":
		in.Actor.Type = string(principal.ActorUser)
	case string(principal.ActorUser), string(principal.ActorService), string(principal.ActorSystem):
	default:
		return invalid("actor.type: must be user, service or system")
	}
	if err := checkText("description", in.Description, MaxDescriptionLen, true); err != nil {
		return err
	}
	if len(in.Fields) > MaxFields {
		return invalid("fields: at most %d entries, got %d", MaxFields, len(in.Fields))
	}
	for k, v := range in.Fields {
		if k == "" || len(k) > MaxFieldKeyLen || strings.TrimLeft(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != "" {
			return invalid("fields: key %q must be 1 to %d characters of A-Z a-z 0-9 _ . -", text.Truncate(k, 70), MaxFieldKeyLen)
		}
		if err := checkText("fields."+k, v, MaxFieldValueLen, true); err != nil {
			return err
		}
	}
	if in.SourceIP != "" {
		a, err := netip.ParseAddr(in.SourceIP)
		if err != nil || a.Zone() != "" {
			return invalid("source_ip: not an IP address")
		}
		in.SourceIP = a.String()
	}
	if k := in.IdempotencyKey; k != "" {
		if len(k) > MaxIdempotencyLen {
			return invalid("idempotency_key: at most %d characters", MaxIdempotencyLen)
		}
		for i := 0; i < len(k); i++ {
			if k[i] <= ' ' || k[i] > '~' {
				return invalid("idempotency_key: only printable ASCII characters without spaces")
			}
		}
	}
	return nil
}

// ValidateAction checks an action name: "noun.verb", see the limits above.
func ValidateAction(action string) error {
	if action == "" {
		return errs.Errorf(errs.Invalid, "action: required (noun.verb, e.g. tenant.created)")
	}
	if len(action) < MinActionLen || len(action) > MaxActionLen {
		return errs.Errorf(errs.Invalid, "action: must be %d to %d characters", MinActionLen, MaxActionLen)
	}
	segs := strings.Split(action, ".")
	ok := len(segs) >= 2
	for _, seg := range segs {
		if seg == "" || strings.TrimLeft(seg, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
			ok = false
		}
	}
	if !ok {
		return errs.Errorf(errs.Invalid, "action: must be noun.verb: lower-case segments of a-z 0-9 _ - joined by dots (e.g. tenant.created)")
	}
	return nil
}

// checkText bounds a string field and rejects NUL bytes (and, unless
// multiline, every control character).
func checkText(name, v string, max int, multiline bool) error {
	if !utf8.ValidString(v) {
		return errs.Errorf(errs.Invalid, "%s: not valid UTF-8", name)
	}
	if n := utf8.RuneCountInString(v); n > max {
		return errs.Errorf(errs.Invalid, "%s: at most %d characters, got %d", name, max, n)
	}
	for _, r := range v {
		if r == 0 || (unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t'))) {
			return errs.Errorf(errs.Invalid, "%s: must not contain control characters", name)
		}
	}
	return nil
}
