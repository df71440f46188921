package audit

import (
	"context"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/deps"
	"log/slog"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/evidence"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/principal"
)

// Service is the audit log's API: append, list, export, verify and the
// retention sweeper. It writes through the Recorder, so appended events
// join the same per-tenant hash chain as the service's own.
type Service struct {
	client   *ent.Client
	recorder *Recorder
	clock    clock.Clock
	pager    *cursor.Pager
	opts     Deps
	// commits batches appends by group (group commit, commit.go).
	commits committer
}

// Deps are what a Service needs.
type Deps struct {
	Client   *ent.Client
	Recorder *Recorder
	Clock    clock.Clock
	Pager    *cursor.Pager
	// RetentionDays is how long events are kept; 0 keeps them forever and
	// Sweep then does nothing.
	RetentionDays int
	// Logger reports the retention sweeper's work; nil discards it.
	Logger *slog.Logger
	// Signer signs digests (AUDIT_SIGNING_KEY_FILE); nil: CreateDigest and
	// the digest job refuse (a reading service such as auditctl's needs
	// none). Call RegisterSigningKey before the first digest.
	Signer *evidence.SigningKey
}

// NewService returns a Service writing through the recorder (whose dialect
// it shares). Client, Recorder, Clock and Pager are required.
func NewService(d Deps) (*Service, error) {
	if err := deps.Require("audit",
		deps.Of("an Ent client", d.Client != nil),
		deps.Of("a recorder", d.Recorder != nil),
		deps.Of("a clock", d.Clock != nil),
		deps.Of("a pager", d.Pager != nil),
	); err != nil {
		return nil, err
	}
	d.Logger = deps.Logger(d.Logger)
	return &Service{client: d.Client, recorder: d.Recorder, clock: d.Clock, pager: d.Pager, opts: d}, nil
}

func (s *Service) postgres() bool { return s.recorder.postgres }

// scope resolves the tenant a call is about, in its canonical lower-case
// form (what group_id holds: any spelling of a tenant's id names the same
// chain): empty means the caller's own tenant; a caller without one
// (platform admin, service, system) must name a tenant unless all is true
// ("" = every tenant). Another tenant's log is "not found" to a tenant
// caller, so ids do not leak. Who may read or append at all is decided by
// auth.Rules, not here.
func scope(ctx context.Context, requested string, all bool) (string, error) {
	caller, err := principal.Require(ctx)
	if err != nil {
		return "", err
	}
	if requested == "" {
		requested = caller.TenantID
	}
	if requested == "" {
		if all {
			return "", nil
		}
		return "", errs.Errorf(errs.Invalid, "tenant_id: required")
	}
	id, err := ids.ParseTenant("tenant_id", requested)
	if err != nil {
		return "", err
	}
	canonical := id.String()
	if err := principal.CheckTenant(ctx, canonical); err != nil {
		return "", err
	}
	return canonical, nil
}
