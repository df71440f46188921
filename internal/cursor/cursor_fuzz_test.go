package cursor

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/platform/tenant-registry/internal/registry"
)

// FuzzDecode: Decode never panics and fails only with Invalid; a cursor made
// by Encode decodes to its position (for valid UTF-8 kinds and ids and
// times JSON can carry, which is all the lists make); the same cursor for
// another kind or scope, or changed in one byte, is rejected as Invalid
// (unless the change does not alter the decoded bytes: the unused low bits
// of the last base64 character). Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add("audit", "tenant=1", "0197a3c2-0000-7000-8000-000000000001", int64(1767225600123456789), "", 0, byte(1))
	f.Add("api_keys", "", "x", int64(0), "not a cursor", 3, byte(0x80))
	f.Add("tenants", "status=active", "id", int64(-62135596800000000), "eyJrIjoiYXVkaXQifQ", 100, byte(0xff))
	f.Add("", "", "", int64(1), "////", -1, byte(2))
	f.Fuzz(func(t *testing.T, kind, scope, id string, nanos int64, raw string, pos int, flip byte) {
		// Arbitrary input.
		if _, err := Decode(kind, scope, raw); err != nil && registry.ErrorCode(err) != registry.Invalid {
			t.Fatalf("Decode(%q): %v is not Invalid", raw, err)
		}

		if id == "" || !utf8.ValidString(kind) || !utf8.ValidString(id) {
			return
		}
		p := Position{Time: time.Unix(0, nanos).UTC(), ID: id}
		s := Encode(kind, scope, p)
		got, err := Decode(kind, scope, s)
		if len(s) > MaxLen {
			if err == nil {
				t.Fatalf("a cursor of %d bytes decoded", len(s))
			}
			return
		}
		if err != nil || !got.Time.Equal(p.Time) || got.ID != p.ID {
			t.Fatalf("Decode(Encode(%v)) = %v, %v", p, got, err)
		}
		for _, other := range []struct{ kind, scope string }{{kind + "x", scope}, {kind, scope + "x"}} {
			if _, err := Decode(other.kind, other.scope, s); registry.ErrorCode(err) != registry.Invalid {
				t.Fatalf("cursor of %q/%q accepted for %q/%q: %v", kind, scope, other.kind, other.scope, err)
			}
		}
		if flip == 0 || len(s) == 0 {
			return
		}
		b := []byte(s)
		i := (pos%len(b) + len(b)) % len(b)
		b[i] ^= flip
		got, err = Decode(kind, scope, string(b))
		switch {
		case err == nil && (!got.Time.Equal(p.Time) || got.ID != p.ID):
			t.Fatalf("changed cursor %q decoded to another position %v", b, got)
		case err != nil && registry.ErrorCode(err) != registry.Invalid:
			t.Fatalf("changed cursor: %v is not Invalid", err)
		case err == nil && i != len(b)-1:
			t.Fatalf("cursor changed at byte %d of %d still decodes", i, len(b))
		}
	})
}
