// Package auth authenticates callers (OIDC bearer tokens from Keycloak) and
// authorises each RPC against one rule table (rules.go).
package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/text"
)

// Leeway is how long after its expiry a token is still accepted, for clock
// skew between Keycloak and this service.
const Leeway = 30 * time.Second

// retryDiscoveryAfter spaces out discovery attempts while the issuer is
// unreachable (e.g. Keycloak still booting).
const retryDiscoveryAfter = 2 * time.Second

// Verifier verifies bearer tokens issued by one OIDC issuer: signature
// through the issuer's JWKS (keys are refetched when a token names an
// unknown key id, so rotation needs nothing), issuer, audience and expiry.
// Discovery is lazy and retried: the service starts while the issuer is
// down, and calls get Unavailable until it answers.
type Verifier struct {
	issuer, audience string
	client           *http.Client
	clock            clock.Clock

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	keys     *keySet
	lastTry  time.Time
	lastErr  error

	cache *tokenCache
}

// NewVerifier returns a Verifier for issuer and audience.
func NewVerifier(issuer, audience string, clock clock.Clock) *Verifier {
	return &Verifier{
		issuer:   strings.TrimSuffix(issuer, "/"),
		audience: audience,
		client:   &http.Client{Timeout: 5 * time.Second},
		clock:    clock,
		cache:    newTokenCache(),
	}
}

// CacheStats counts the verifications served from the verified-token cache
// and those that were not.
func (v *Verifier) CacheStats() (hits, misses uint64) {
	return v.cache.hits.Load(), v.cache.misses.Load()
}

func (v *Verifier) tokenVerifier(ctx context.Context) (*oidc.IDTokenVerifier, *keySet, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, v.keys, nil
	}
	now := v.clock()
	if !v.lastTry.IsZero() && now.Sub(v.lastTry) < retryDiscoveryAfter {
		return nil, nil, v.lastErr
	}
	v.lastTry = now
	// The provider keeps this context for its requests: no deadline on it;
	// the client's timeout bounds each request.
	p, err := oidc.NewProvider(oidc.ClientContext(context.WithoutCancel(ctx), v.client), v.issuer)
	if err != nil {
		v.lastErr = fmt.Errorf("OIDC discovery at %s: %w", v.issuer, err)
		return nil, nil, v.lastErr
	}
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		v.lastErr = fmt.Errorf("OIDC discovery at %s: no jwks_uri (%v)", v.issuer, err)
		return nil, nil, v.lastErr
	}
	v.keys = &keySet{url: meta.JWKS, client: v.client, clock: v.clock}
	v.verifier = oidc.NewVerifier(v.issuer, v.keys, &oidc.Config{
		ClientID: v.audience,
		Now:      func() time.Time { return v.clock().Add(-Leeway) },
	})
	return v.verifier, v.keys, nil
}

// Claims are the token claims tenant-registry reads.
type Claims struct {
	Subject           string `json:"sub"`
	Name              string `json:"name"`
	PreferredUsername string `json:"preferred_username"`
	TenantID          string `json:"tenant_id"`
	RealmAccess       struct {
		Roles []string `json:"roles"`
	} `json:"realm_access"`
	ResourceAccess map[string]struct {
		Roles []string `json:"roles"`
	} `json:"resource_access"`
}

// ErrNotReady reports that the issuer could not be reached yet.
var ErrNotReady = errors.New("identity provider not reachable yet")

// Verify verifies raw and returns its caller.
//
// A token verified before is served from the verified-token cache (see
// tokenCache) until its expiry, while the issuer's key set is unchanged.
func (v *Verifier) Verify(ctx context.Context, raw string) (principal.Principal, error) {
	tv, keys, err := v.tokenVerifier(ctx)
	if err != nil {
		return principal.Principal{}, fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	sum := tokenSum(raw)
	if gen, fresh := keys.state(); fresh {
		if p, ok := v.cache.get(sum, gen, v.clock()); ok {
			return p, nil
		}
	}
	v.cache.misses.Add(1)
	tok, err := tv.Verify(ctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return principal.Principal{}, errs.Errorf(errs.Unauthenticated, "token expired")
		}
		if strings.Contains(err.Error(), "fetching keys") {
			return principal.Principal{}, fmt.Errorf("%w: %w", ErrNotReady, err)
		}
		return principal.Principal{}, errs.Errorf(errs.Unauthenticated, "invalid token")
	}
	var c Claims
	if err := tok.Claims(&c); err != nil {
		return principal.Principal{}, errs.Errorf(errs.Unauthenticated, "invalid token claims")
	}
	p := principalOf(c, v.audience)
	var nbf struct {
		NotBefore float64 `json:"nbf"`
	}
	_ = tok.Claims(&nbf)
	e := cachedToken{p: p, until: tok.Expiry.Add(Leeway)}
	if nbf.NotBefore > 0 {
		e.from = time.Unix(int64(nbf.NotBefore), 0).Add(-Leeway)
	}
	e.gen, _ = keys.state() // the set that just vouched for it
	v.cache.put(sum, e, v.clock())
	return p, nil
}

// tokenSum is the verified-token cache's key of raw, its SHA-256, hashed
// from a pooled buffer: a bearer token is about a kilobyte, and
// []byte(raw) would copy it to the heap on every request.
func tokenSum(raw string) [sha256.Size]byte {
	bp := tokenBufs.Get().(*[]byte)
	b := append((*bp)[:0], raw...)
	sum := sha256.Sum256(b)
	if cap(b) <= 16<<10 { // the header limit bounds tokens; keep no giant buffer
		*bp = b[:0]
		tokenBufs.Put(bp)
	}
	return sum
}

var tokenBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxNameLen is the longest name a principal carries: what an audit
// event's actor name holds (audit.MaxNameLen).
const maxNameLen = 255

func principalOf(c Claims, audience string) principal.Principal {
	p := principal.Principal{
		Subject:  c.Subject,
		Name:     c.Name,
		Type:     principal.ActorUser,
		TenantID: ids.Canonical(c.TenantID),
		Roles:    append([]string(nil), c.RealmAccess.Roles...),
	}
	if p.Name == "" {
		p.Name = c.PreferredUsername
	}
	// The name is shown, and recorded as audit events' actor: cut to what
	// those hold, so a long display name never makes a caller's changes
	// fail.
	p.Name = text.Truncate(p.Name, maxNameLen)
	if ra, ok := c.ResourceAccess[audience]; ok {
		p.Roles = append(p.Roles, ra.Roles...)
	}
	if p.TenantID == "" && p.HasRole(principal.RoleInternal) {
		p.Type = principal.ActorService
	}
	return p
}
