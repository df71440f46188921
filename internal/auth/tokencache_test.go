package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/auth"
	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/storetest"
)

// TestVerifiedTokenCache: a token verified once is served from the cache
// (no second signature check), but never past its expiry, never when it was
// tampered with, and never once the issuer's key set changed or grew old.
func TestVerifiedTokenCache(t *testing.T) {
	is := oidctest.New()
	defer is.Close()
	clock := storetest.NewClock(time.Now())
	v := auth.NewVerifier(is.URL(), audience, clock.Now)
	ctx := context.Background()
	claims := oidctest.Claims{Subject: "u1", TenantID: "t1", Audience: []string{audience}, Expiry: clock.Now().Add(10 * time.Minute)}
	tok := is.Token(claims)

	verify := func(raw string) (string, error) {
		t.Helper()
		p, err := v.Verify(ctx, raw)
		return p.Subject, err
	}
	if sub, err := verify(tok); err != nil || sub != "u1" {
		t.Fatalf("first verify: %q %v", sub, err)
	}
	if sub, err := verify(tok); err != nil || sub != "u1" {
		t.Fatalf("second verify: %q %v", sub, err)
	}
	if hits, misses := v.CacheStats(); hits != 1 || misses != 1 {
		t.Errorf("cache hits, misses = %d, %d; want 1, 1", hits, misses)
	}

	// A tampered token (one byte of the signature) is never served.
	tampered := tok[:len(tok)-2] + string(tok[len(tok)-2]^1) + tok[len(tok)-1:]
	if _, err := verify(tampered); errs.CodeOf(err) != errs.Unauthenticated {
		t.Errorf("tampered token: %v, want unauthenticated", err)
	}

	// Past its expiry (and the leeway) the cached token is refused.
	clock.Advance(10*time.Minute + auth.Leeway + time.Second)
	if _, err := verify(tok); errs.CodeOf(err) != errs.Unauthenticated {
		t.Errorf("cached token past its expiry: %v, want unauthenticated", err)
	}
}

// TestRevokedKeyNotServedFromCache: the issuer revokes the key that signed a
// cached token. Once the verifier sees the new key set — at once when a
// token names the new key, else when the set is too old to vouch — the
// cached token is refused.
func TestRevokedKeyNotServedFromCache(t *testing.T) {
	for _, how := range []string{"new key seen", "key set aged"} {
		t.Run(how, func(t *testing.T) {
			is := oidctest.New()
			defer is.Close()
			clock := storetest.NewClock(time.Now())
			v := auth.NewVerifier(is.URL(), audience, clock.Now)
			ctx := context.Background()
			old := is.Token(oidctest.Claims{Subject: "old", Audience: []string{audience}, Expiry: clock.Now().Add(time.Hour)})
			if _, err := v.Verify(ctx, old); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(ctx, old); err != nil {
				t.Fatal(err)
			}
			is.Rotate()
			is.RetireOldKeys()
			switch how {
			case "new key seen":
				fresh := is.Token(oidctest.Claims{Subject: "new", Audience: []string{audience}, Expiry: clock.Now().Add(time.Hour)})
				if p, err := v.Verify(ctx, fresh); err != nil || p.Subject != "new" {
					t.Fatalf("token of the new key: %v", err)
				}
			case "key set aged":
				clock.Advance(6 * time.Minute)
			}
			if _, err := v.Verify(ctx, old); errs.CodeOf(err) != errs.Unauthenticated {
				t.Errorf("cached token of a revoked key: %v, want unauthenticated", err)
			}
		})
	}
}
