package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/platform/tenant-registry/internal/registry"
)

// Authenticator turns a request's Authorization header into its caller.
type Authenticator struct {
	verifier  *Verifier // nil when no issuer is configured
	anonymous bool      // APP_ENV=dev: token-less calls are served as a platform admin
}

// NewAuthenticator returns an Authenticator. With allowAnonymous (dev only),
// a request without a token is the dev principal, a platform admin.
func NewAuthenticator(v *Verifier, allowAnonymous bool) *Authenticator {
	return &Authenticator{verifier: v, anonymous: allowAnonymous}
}

// Authenticate returns the caller of a request with header h.
func (a *Authenticator) Authenticate(ctx context.Context, h http.Header) (registry.Principal, error) {
	authz := h.Get("Authorization")
	if authz == "" {
		if a.anonymous {
			return registry.DevPrincipal, nil
		}
		return registry.Principal{}, registry.Errorf(registry.Unauthenticated, "missing bearer token")
	}
	scheme, token, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return registry.Principal{}, registry.Errorf(registry.Unauthenticated, "the Authorization header must be \"Bearer <token>\"")
	}
	if a.verifier == nil {
		return registry.Principal{}, registry.Errorf(registry.Unauthenticated, "bearer tokens are not accepted: KEYCLOAK_ISSUER is not set")
	}
	p, err := a.verifier.Verify(ctx, strings.TrimSpace(token))
	if errors.Is(err, ErrNotReady) {
		return registry.Principal{}, &registry.Error{Code: registry.Unavailable, Message: "authentication is unavailable: the identity provider cannot be reached yet"}
	}
	return p, err
}
