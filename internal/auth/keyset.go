package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/platform/tenant-registry/internal/clock"
)

// Refetch rules of the issuer's key set.
const (
	// keysMaxAge: a key set older than this is refetched before it vouches
	// for a token again, and verified tokens are served from the cache
	// only while the key set is younger (so a signing key the issuer
	// revoked stops being trusted within keysMaxAge, cache or not).
	keysMaxAge = 5 * time.Minute
	// keysMinRefetch spaces out refetches for a key id the last refetch
	// did not find (a token can name any kid); a key id not tried yet (a
	// rotation) is fetched for at once, as go-oidc's own key set does.
	keysMinRefetch = time.Second
)

// signingAlgs are the algorithms a token may be signed with.
var signingAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512}

// keySet is the issuer's JWKS, as go-oidc verifies signatures with it
// (oidc.KeySet): refetched when a token names a key id it lacks (at most
// once every keysMinRefetch) or when older than keysMaxAge. gen counts the
// changes of its contents, so the token cache can drop what an older set
// vouched for.
type keySet struct {
	url    string
	client *http.Client
	clock  clock.Clock

	mu      sync.Mutex
	keys    map[string]jose.JSONWebKey // by key id
	raw     string                     // the last JWKS document, to tell a change
	fetched time.Time
	missed  map[string]time.Time // key ids a refetch did not find, and when
	gen     uint64
}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, signingAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("want one signature, got %d", len(jws.Signatures))
	}
	key, err := k.key(ctx, jws.Signatures[0].Header.KeyID)
	if err != nil {
		return nil, err
	}
	return jws.Verify(key)
}

// state is the key set's generation, and whether it is young enough to
// vouch for cached tokens.
func (k *keySet) state() (gen uint64, fresh bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gen, !k.fetched.IsZero() && k.clock().Sub(k.fetched) < keysMaxAge
}

func (k *keySet) key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.clock()
	key, ok := k.keys[kid]
	stale := k.fetched.IsZero() || now.Sub(k.fetched) >= keysMaxAge
	if ok && !stale {
		return key, nil
	}
	if missedAt, missed := k.missed[kid]; stale || !missed || now.Sub(missedAt) >= keysMinRefetch {
		if err := k.fetch(ctx); err != nil {
			return jose.JSONWebKey{}, err
		}
		k.fetched = now
		if key, ok = k.keys[kid]; !ok {
			if k.missed == nil || len(k.missed) > 1000 {
				k.missed = map[string]time.Time{}
			}
			k.missed[kid] = now
		}
	}
	if !ok {
		return jose.JSONWebKey{}, fmt.Errorf("no key with id %q in the issuer's key set", kid)
	}
	return key, nil
}

// fetch reads the JWKS; k.mu is held. Its errors say "fetching keys", which
// Verify reports as the issuer not being reachable.
func (k *keySet) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("fetching keys: %w", err)
	}
	res, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching keys: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching keys: %s answered %s", k.url, res.Status)
	}
	var raw json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(nil, res.Body, 1<<20)).Decode(&raw); err != nil {
		return fmt.Errorf("fetching keys: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return fmt.Errorf("fetching keys: %w", err)
	}
	keys := make(map[string]jose.JSONWebKey, len(set.Keys))
	for _, key := range set.Keys {
		if key.Use == "" || key.Use == "sig" {
			keys[key.KeyID] = key
		}
	}
	if string(raw) != k.raw {
		k.raw, k.keys = string(raw), keys
		k.gen++
	}
	return nil
}
