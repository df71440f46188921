// Package cursor encodes keyset-pagination positions as opaque strings that
// round-trip through URLs. A cursor names the list it belongs to and a
// fingerprint of that list's filters, and carries a checksum: a cursor that
// was altered, or that comes from another list or other filters, is
// rejected as invalid input rather than silently returning the wrong page.
package cursor

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/platform/tenant-registry/internal/registry"
)

// Position is the last row of a page in (time, id) keyset order.
type Position struct {
	Time time.Time
	ID   string
}

// MaxLen bounds an encoded cursor; longer input is rejected unread.
const MaxLen = 512

type payload struct {
	Kind  string    `json:"k"`
	Scope string    `json:"s"`
	Time  time.Time `json:"t"`
	ID    string    `json:"i"`
}

var enc = base64.RawURLEncoding

// Encode returns the cursor for p in list kind with filters scope.
func Encode(kind, scope string, p Position) string {
	b, _ := json.Marshal(payload{Kind: kind, Scope: fingerprint(scope), Time: p.Time.UTC(), ID: p.ID})
	sum := checksum(b)
	return enc.EncodeToString(append(b, sum...))
}

// Decode parses a cursor made by Encode with the same kind and scope.
func Decode(kind, scope, s string) (Position, error) {
	bad := registry.Errorf(registry.Invalid, "cursor: not a cursor of this list (was it changed, or made with other filters?)")
	if len(s) > MaxLen {
		return Position{}, bad
	}
	raw, err := enc.DecodeString(s)
	if err != nil || len(raw) <= sumLen {
		return Position{}, bad
	}
	body, sum := raw[:len(raw)-sumLen], raw[len(raw)-sumLen:]
	if !bytes.Equal(sum, checksum(body)) {
		return Position{}, bad
	}
	var p payload
	if err := json.Unmarshal(body, &p); err != nil || p.Kind != kind || p.Scope != fingerprint(scope) || p.ID == "" {
		return Position{}, bad
	}
	return Position{Time: p.Time, ID: p.ID}, nil
}

const sumLen = 8

func checksum(b []byte) []byte {
	h := sha256.Sum256(append([]byte("tenant-registry cursor v1\x00"), b...))
	return h[:sumLen]
}

func fingerprint(scope string) string {
	h := sha256.Sum256([]byte(scope))
	return enc.EncodeToString(h[:6])
}
