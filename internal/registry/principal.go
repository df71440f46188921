package registry

import (
	"context"
	"time"
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

// DevPrincipal is the caller of a token-less request in APP_ENV=dev.
var DevPrincipal = Principal{Subject: "dev", Name: "Developer (no token, APP_ENV=dev)", Type: ActorUser, Roles: []string{RolePlatformAdmin}, Anonymous: true}

// SystemPrincipal is the service itself (background workers, the dev seed).
var SystemPrincipal = Principal{Subject: "tenant-registry", Name: "tenant-registry", Type: ActorSystem}

type principalKey struct{}
type sourceIPKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller in ctx; the system principal when none is
// set (background work).
func PrincipalFrom(ctx context.Context) Principal {
	if p, ok := ctx.Value(principalKey{}).(Principal); ok {
		return p
	}
	return SystemPrincipal
}

// WithSourceIP returns ctx carrying the caller's IP address.
func WithSourceIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, sourceIPKey{}, ip)
}

// SourceIPFrom returns the caller's IP address, or "".
func SourceIPFrom(ctx context.Context) string {
	ip, _ := ctx.Value(sourceIPKey{}).(string)
	return ip
}

// Clock tells the time. Logic never calls time.Now directly: tests inject a
// clock they control.
type Clock func() time.Time

// SystemClock is the real clock, in UTC, truncated to microseconds (what
// PostgreSQL stores), so values read back compare equal.
func SystemClock() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// CheckTenant answers NotFound when the caller in ctx may not see tenantID:
// a tenant user or IT_ADMIN sees only their own tenant, and another
// tenant's things are "not found" (not "forbidden"), so ids do not leak.
// Platform admins, services and the system see every tenant. Ids compare
// as UUIDs: any spelling of one names the same tenant.
func CheckTenant(ctx context.Context, tenantID string) error {
	p := PrincipalFrom(ctx)
	if p.HasRole(RolePlatformAdmin) || p.HasRole(RoleInternal) || p.Type == ActorSystem {
		return nil
	}
	if p.TenantID != "" && CanonicalID(p.TenantID) == CanonicalID(tenantID) {
		return nil
	}
	return Errorf(NotFound, "not found")
}
