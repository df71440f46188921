// Package oidctest is an in-process OIDC issuer for tests: discovery, a
// JWKS endpoint and RS256 tokens signed with keys generated per issuer.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is a test OIDC issuer.
type Issuer struct {
	srv *httptest.Server

	mu   sync.Mutex
	keys []*rsa.PrivateKey // keys[len-1] signs; all are published
	kids []string
	down bool
}

// New starts an issuer; Close stops it.
func New() *Issuer {
	is := &Issuer{}
	is.Rotate()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", is.discovery)
	mux.HandleFunc("GET /jwks", is.jwks)
	is.srv = httptest.NewServer(mux)
	return is
}

// URL is the issuer URL.
func (is *Issuer) URL() string { return is.srv.URL }

// Close stops the issuer.
func (is *Issuer) Close() { is.srv.Close() }

// SetDown makes every endpoint answer 503 (the issuer is still booting).
func (is *Issuer) SetDown(down bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.down = down
}

// Rotate adds a new signing key; earlier keys stay published.
func (is *Issuer) Rotate() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = append(is.keys, key)
	is.kids = append(is.kids, fmt.Sprintf("key-%d", len(is.keys)))
}

// RetireOldKeys stops publishing every key but the newest: the issuer
// revoked them, and tokens they signed must no longer verify.
func (is *Issuer) RetireOldKeys() {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = is.keys[len(is.keys)-1:]
	is.kids = is.kids[len(is.kids)-1:]
}

func (is *Issuer) isDown(w http.ResponseWriter) bool {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.down {
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}
	return is.down
}

func (is *Issuer) discovery(w http.ResponseWriter, _ *http.Request) {
	if is.isDown(w) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                is.URL(),
		"jwks_uri":                              is.URL() + "/jwks",
		"authorization_endpoint":                is.URL() + "/auth",
		"token_endpoint":                        is.URL() + "/token",
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

func (is *Issuer) jwks(w http.ResponseWriter, _ *http.Request) {
	if is.isDown(w) {
		return
	}
	is.mu.Lock()
	set := jose.JSONWebKeySet{}
	for i, k := range is.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: is.kids[i], Algorithm: "RS256", Use: "sig"})
	}
	is.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// Claims of a test token. Zero Issuer means this issuer; zero Expiry means
// an hour from now.
type Claims struct {
	Issuer, Subject, Name, TenantID string
	Audience                        []string
	Roles                           []string // realm roles
	Expiry                          time.Time
	// KeyID overrides the signing key's id (an unknown kid).
	KeyID string
	// SignWith signs with another key (a bad signature).
	SignWith *rsa.PrivateKey
}

// Token returns a signed JWT.
func (is *Issuer) Token(c Claims) string {
	is.mu.Lock()
	key, kid := is.keys[len(is.keys)-1], is.kids[len(is.kids)-1]
	is.mu.Unlock()
	if c.SignWith != nil {
		key = c.SignWith
	}
	if c.KeyID != "" {
		kid = c.KeyID
	}
	if c.Issuer == "" {
		c.Issuer = is.URL()
	}
	if c.Expiry.IsZero() {
		c.Expiry = time.Now().Add(time.Hour)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		panic(err)
	}
	claims := map[string]any{
		"iss": c.Issuer, "sub": c.Subject, "aud": c.Audience, "name": c.Name,
		"exp": c.Expiry.Unix(), "iat": time.Now().Add(-time.Minute).Unix(),
		"realm_access": map[string]any{"roles": c.Roles},
	}
	if c.TenantID != "" {
		claims["tenant_id"] = c.TenantID
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		panic(err)
	}
	return raw
}

// NewKey returns a fresh RSA key that this issuer does not publish.
func NewKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}
