// Package principal is who is calling: the authenticated principal a
// request (or a background job, as the system) carries in its context, its
// roles, and the tenant scope every read and change goes through
// (CheckTenant).
package principal

import (
	"context"
	"time"

	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
)

// ActorType is the Retraced actor type.
type ActorType string

const (
	ActorUser    ActorType = "user"
	ActorService ActorType = "service"
	ActorSystem  ActorType = "system"
)

// Roles a principal can hold.
const (
	RolePlatformAdmin = "platform-admin"
	RoleITAdmin       = "IT_ADMIN"
	RoleInternal      = "tenant-registry-internal"
)

// Principal is who is calling.
type Principal struct {
	Subject  string // token subject, or a fixed id for dev and system actors
	Name     string
	Type     ActorType
	TenantID string // the caller's tenant; empty for platform admins and services
	Roles    []string
	// Anonymous is true for the dev mode's token-less platform admin.
	Anonymous bool
	// Viewer is set for the holder of a Retraced viewer token: it may
	// read its group's audit log (ListEvents, ExportEvents) and nothing
	// else (auth.Authorize), and each read appends its view action.
	Viewer *Viewer
}

// Viewer is what a Retraced viewer token grants: reading one group's (a
// tenant's) audit log as one actor until ExpiresAt.
type Viewer struct {
	// GroupID is the tenant whose log the token reads (canonical UUID).
	GroupID string
	// ActorID is who views: the actor of the view events.
	ActorID string
	// IsAdmin is Retraced's is_admin flag, carried along; it grants
	// nothing more here.
	IsAdmin bool
	// ViewAction is the action appended on each read (audit.log.view
	// unless the token was issued with view_log_action).
	ViewAction string
	// KeyID is the API key that issued the token.
	KeyID     string
	ExpiresAt time.Time
}

// HasRole reports whether p holds role.
func (p Principal) HasRole(role string) bool {
	for _, r := range p.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Dev is the caller of a token-less request in APP_ENV=dev.
var Dev = Principal{Subject: "dev", Name: "Developer (no token, APP_ENV=dev)", Type: ActorUser, Roles: []string{RolePlatformAdmin}, Anonymous: true}

// System is the service itself: background workers, commands and
// the dev seed put it into their contexts explicitly.
var System = Principal{Subject: "tenant-registry", Name: "tenant-registry", Type: ActorSystem}

type principalKey struct{}
type sourceIPKey struct{}

// With returns ctx carrying p.
func With(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// From returns the caller in ctx, and whether there is one. There
// is no default: the server puts the authenticated caller into every
// request's context, background workers and commands put System.
func From(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Require returns the caller in ctx; a context without one is refused
// (errs.Unauthenticated), so a code path that forgot to say who is calling
// fails closed.
func Require(ctx context.Context) (Principal, error) {
	p, ok := From(ctx)
	if !ok {
		return Principal{}, errs.Errorf(errs.Unauthenticated, "no caller")
	}
	return p, nil
}

// WithSourceIP returns ctx carrying the caller's IP address.
func WithSourceIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, sourceIPKey{}, ip)
}

// SourceIP returns the caller's IP address, or "".
func SourceIP(ctx context.Context) string {
	ip, _ := ctx.Value(sourceIPKey{}).(string)
	return ip
}

// TenantScoped reports whether p only ever sees one tenant, its own: any
// caller with a tenant (a token's tenant_id claim), whatever roles it also
// holds, and a caller that is neither a platform admin, a service nor the
// system. Only tenant-less platform admins, services and the system see
// every tenant.
func (p Principal) TenantScoped() bool {
	if p.TenantID != "" {
		return true
	}
	return !p.HasRole(RolePlatformAdmin) && !p.HasRole(RoleInternal) && p.Type != ActorSystem
}

// CheckTenant is the tenant scope of every read and change, the one check
// behind every RPC and plain HTTP handler: it answers NotFound ("tenant not
// found") when the caller in ctx may not see tenantID:
// a tenant-scoped caller sees only their own tenant, and another tenant's
// things are "not found" (not "forbidden"), so ids do not leak. Any spelling
// of a UUID names the same tenant.
func CheckTenant(ctx context.Context, tenantID string) error {
	p, err := Require(ctx)
	if err != nil {
		return err
	}
	if !p.TenantScoped() {
		return nil
	}
	if p.TenantID != "" && ids.Same(p.TenantID, tenantID) {
		return nil
	}
	return errs.Errorf(errs.NotFound, "tenant not found")
}
