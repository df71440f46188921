package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/principal"
)

// Authenticator turns a request's Authorization header into its caller.
type Authenticator struct {
	verifier  *Verifier     // nil when no issuer is configured
	anonymous bool          // APP_ENV=dev: token-less calls are served as a platform admin
	viewers   *ViewerTokens // nil: Retraced viewer tokens are refused
}

// WithViewerTokens returns a copy of a that also accepts Retraced viewer
// tokens ("Bearer rtv1.…", see ViewerTokens) verified by v: their caller
// is a principal with Viewer set.
func (a *Authenticator) WithViewerTokens(v *ViewerTokens) *Authenticator {
	c := *a
	c.viewers = v
	return &c
}

// NewAuthenticator returns an Authenticator. With allowAnonymous (dev only),
// a request without a token is the dev principal, a platform admin.
func NewAuthenticator(v *Verifier, allowAnonymous bool) *Authenticator {
	return &Authenticator{verifier: v, anonymous: allowAnonymous}
}

// Authenticate returns the caller of a request with header h.
func (a *Authenticator) Authenticate(ctx context.Context, h http.Header) (principal.Principal, error) {
	authz := h.Get("Authorization")
	if authz == "" {
		if a.anonymous {
			return principal.Dev, nil
		}
		return principal.Principal{}, errs.Errorf(errs.Unauthenticated, "missing bearer token")
	}
	scheme, token, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return principal.Principal{}, errs.Errorf(errs.Unauthenticated, "the Authorization header must be \"Bearer <token>\"")
	}
	token = strings.TrimSpace(token)
	if strings.HasPrefix(token, ViewerTokenPrefix) {
		if a.viewers == nil {
			return principal.Principal{}, errs.Errorf(errs.Unauthenticated, "viewer tokens are not accepted here")
		}
		v, err := a.viewers.Verify(token)
		if err != nil {
			return principal.Principal{}, err
		}
		return viewerPrincipal(v), nil
	}
	if a.verifier == nil {
		return principal.Principal{}, errs.Errorf(errs.Unauthenticated, "bearer tokens are not accepted: KEYCLOAK_ISSUER is not set")
	}
	p, err := a.verifier.Verify(ctx, token)
	if errors.Is(err, ErrNotReady) {
		return principal.Principal{}, &errs.Error{Code: errs.Unavailable, Message: "authentication is unavailable: the identity provider cannot be reached yet"}
	}
	return p, err
}
