// Package apikey manages tenants' API keys for headless products: create,
// list, revoke, rotate, and Verify — the hot path every request to every
// headless product passes through.
//
// # Keys
//
// A key is "trk_" followed by 43 base64url characters (32 bytes from
// crypto/rand, 256 bits). Only HMAC-SHA-256(server secret, key) is stored,
// plus a short non-secret display prefix ("trk_" and the next 8 characters).
// The plaintext exists in the create/rotate answer and nowhere else: not in a
// table, not in an audit event, not in a log line.
//
// # Verify
//
// Input that cannot be a key (empty, longer than MaxKeyLen bytes, not UTF-8,
// without the "trk_" prefix, wrong length or alphabet) is answered
// valid=false, reason "unknown" without touching the database: the key
// format is public, so this leaks nothing. For a well-formed key the HMAC is
// always computed and the database path is the same for unknown, revoked,
// expired and frozen keys (the same three queries, a constant-time compare,
// no early exit on existence). Only valid verdicts are cached, so every
// invalid answer, whatever its reason, takes the database path.
//
// # Cache and staleness
//
// See cache.go and listener.go: valid verdicts are cached in process and
// dropped by PostgreSQL LISTEN/NOTIFY (triggers on api_keys, tenants and
// tenant_products, so any writer invalidates; the payload names the key or
// tenant to drop). The cache is used only while the listener's heartbeat
// NOTIFY, sent through the pool, came back within Options.StaleAfter;
// otherwise every verify reads the database (fail closed). This process's
// own writes drop what they change at commit (invalidate.go).
package apikey

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"sync"
)

const (
	// KeyPrefix starts every key, so leaked keys are greppable by secret
	// scanners.
	KeyPrefix = "trk_"
	// secretBytes of randomness per key (256 bits).
	secretBytes = 32
	// keyLen is the length of a key: the prefix and 43 base64url characters.
	keyLen = len(KeyPrefix) + 43
	// displayChars after KeyPrefix make the stored display prefix.
	displayChars = 8
	// MaxKeyLen bounds what Verify reads; longer input is not a key.
	MaxKeyLen = 256
	// MinSecretLen is the shortest server secret accepted.
	MinSecretLen = 32
)

var b64 = base64.RawURLEncoding

// newKey returns a fresh plaintext key.
func newKey() (string, error) {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate api key: %w", err)
	}
	return KeyPrefix + b64.EncodeToString(b[:]), nil
}

// displayPrefix is the non-secret part shown in lists: "trk_" and 8
// characters (48 of the 256 bits; the other 208 stay secret).
func displayPrefix(key string) string { return key[:len(KeyPrefix)+displayChars] }

// wellFormed reports whether s can be a key made by newKey. It looks at
// every byte (no early exit), though the format is public anyway.
func wellFormed(s string) bool {
	if len(s) != keyLen || s[:len(KeyPrefix)] != KeyPrefix {
		return false
	}
	ok := true
	for i := len(KeyPrefix); i < len(s); i++ {
		c := s[i]
		ok = ok && (c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	}
	if !ok {
		return false
	}
	// The last character carries 2 padding bits that must be zero, so each
	// key has exactly one spelling.
	raw, err := b64.Strict().DecodeString(s[len(KeyPrefix):])
	return err == nil && len(raw) == secretBytes
}

// hasher computes the keyed hash that is stored and looked up. Keyed
// HMAC states are pooled, with buffers for the key and the sum: every
// verify hashes, and a fresh HMAC costs its key schedule and allocations
// each time.
type hasher struct{ pool *sync.Pool }

type hashState struct {
	mac     hash.Hash
	in, out []byte
}

func newHasher(secret []byte) hasher {
	secret = bytes.Clone(secret)
	return hasher{pool: &sync.Pool{New: func() any {
		return &hashState{mac: hmac.New(sha256.New, secret), in: make([]byte, 0, 64), out: make([]byte, 0, sha256.Size)}
	}}}
}

func (h hasher) sum(key string) (out [sha256.Size]byte) {
	s := h.pool.Get().(*hashState)
	s.mac.Reset()
	s.in = append(s.in[:0], key...)
	s.mac.Write(s.in)
	s.out = s.mac.Sum(s.out[:0])
	copy(out[:], s.out)
	if cap(s.in) <= 1<<10 { // a key, not some huge input, stays pooled
		h.pool.Put(s)
	}
	return out
}
