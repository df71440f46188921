package audit

import (
	"log/slog"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/internal/registry"
)

// Service is the audit log's API: append, list, export, verify and the
// retention sweeper. It writes through the Recorder, so appended events
// join the same per-tenant hash chain as the service's own.
type Service struct {
	client   *ent.Client
	recorder *Recorder
	clock    registry.Clock
	opts     Options
}

// Options tune a Service.
type Options struct {
	// RetentionDays is how long events are kept; 0 keeps them forever and
	// RunRetention then does nothing.
	RetentionDays int
	// Logger reports the retention sweeper's work; nil discards it.
	Logger *slog.Logger
}

// NewService returns a Service writing through recorder (whose dialect it
// shares).
func NewService(client *ent.Client, recorder *Recorder, clock registry.Clock, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{client: client, recorder: recorder, clock: clock, opts: opts}
}

func (s *Service) postgres() bool { return s.recorder.postgres }

// parseTenantID parses a tenant id given as field.
func parseTenantID(field, id string) (uuid.UUID, error) {
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return uuid.Nil, registry.Errorf(registry.Invalid, "%s: not a tenant id (want a UUID)", field)
	}
	return u, nil
}

// isPlatform reports whether p acts across tenants: a platform admin or the
// service itself (background work, the auditctl command).
func isPlatform(p registry.Principal) bool {
	return p.TenantID == "" && (p.HasRole(registry.RolePlatformAdmin) || p.Type == registry.ActorSystem)
}

// readScope decides which tenant a reader (list, export, verify) sees. A
// tenant caller sees only its own tenant, and only with the IT_ADMIN role;
// naming another tenant is "not found", so ids do not leak. A platform
// caller sees the tenant it names, or every tenant when it names none and
// all is true. It returns the tenant id to filter on ("" = all).
func readScope(p registry.Principal, requested string, all bool) (string, error) {
	if requested != "" {
		if _, err := parseTenantID("tenant_id", requested); err != nil {
			return "", err
		}
	}
	switch {
	case p.TenantID != "":
		if requested != "" && requested != p.TenantID {
			return "", registry.Errorf(registry.NotFound, "tenant not found")
		}
		if !p.HasRole(registry.RoleITAdmin) {
			return "", registry.Errorf(registry.Forbidden, "reading the audit log needs the %s role", registry.RoleITAdmin)
		}
		return p.TenantID, nil
	case isPlatform(p):
		if requested == "" && !all {
			return "", registry.Errorf(registry.Invalid, "tenant_id: required")
		}
		return requested, nil
	default:
		return "", registry.Errorf(registry.Forbidden, "reading the audit log is not allowed for this caller")
	}
}
