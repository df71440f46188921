package cursor

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/internal/errs"
)

var testKey = []byte("cursor-test-secret-0123456789abcdef")

func testPager(t testing.TB) *Pager {
	t.Helper()
	p, err := NewPager(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FuzzDecode: decoding never panics and fails only with Invalid; a cursor
// the pager made decodes to its position; the same cursor for another kind
// or scope, changed in one byte, or decoded by a pager with another key is
// rejected as Invalid (unless the change does not alter the decoded bytes:
// the unused low bits of the last base64 character). Seeds:
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add("audit", "tenant=1", "0197a3c2-0000-7000-8000-000000000001", int64(1767225600123456789), "", 0, byte(1))
	f.Add("api_keys", "", "x", int64(0), "not a cursor", 3, byte(0x80))
	f.Add("tenants", "status=active", "id", int64(-62135596800000000), "eyJrIjoiYXVkaXQifQ", 100, byte(0xff))
	f.Add("", "", "", int64(1), "////", -1, byte(2))
	p := testPager(f)
	other, err := NewPager([]byte("another-secret-0123456789abcdef-xyz"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, kind, scope, id string, nanos int64, raw string, pos int, flip byte) {
		// Arbitrary input.
		if _, _, err := p.Start(Request{Kind: kind, Scope: []string{scope}, Cursor: raw}); err != nil && errs.CodeOf(err) != errs.Invalid {
			t.Fatalf("Start(%q): %v is not Invalid", raw, err)
		}
		if !utf8.ValidString(kind) {
			return
		}
		want := Position{Time: time.Unix(0, nanos).UTC(), ID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(id))}
		s := p.Encode(kind, []string{scope}, want)
		req := Request{Kind: kind, Scope: []string{scope}, Cursor: s}
		_, got, err := p.Start(req)
		if len(s) > MaxLen {
			if err == nil {
				t.Fatalf("a cursor of %d bytes decoded", len(s))
			}
			return
		}
		if err != nil || !got.Time.Equal(want.Time) || got.ID != want.ID {
			t.Fatalf("Start(Encode(%v)) = %v, %v", want, got, err)
		}
		if _, _, err := other.Start(req); errs.CodeOf(err) != errs.Invalid {
			t.Fatalf("a cursor made under another key decoded: %v", err)
		}
		for _, o := range []Request{{Kind: kind + "x", Scope: []string{scope}, Cursor: s}, {Kind: kind, Scope: []string{scope + "x"}, Cursor: s}} {
			if _, _, err := p.Start(o); errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("cursor of %q/%q accepted for %q/%v: %v", kind, scope, o.Kind, o.Scope, err)
			}
		}
		if flip == 0 || len(s) == 0 {
			return
		}
		b := []byte(s)
		i := (pos%len(b) + len(b)) % len(b)
		b[i] ^= flip
		_, got, err = p.Start(Request{Kind: kind, Scope: []string{scope}, Cursor: string(b)})
		switch {
		case err == nil && (!got.Time.Equal(want.Time) || got.ID != want.ID):
			t.Fatalf("changed cursor %q decoded to another position %v", b, got)
		case err != nil && errs.CodeOf(err) != errs.Invalid:
			t.Fatalf("changed cursor: %v is not Invalid", err)
		case err == nil && i != len(b)-1:
			t.Fatalf("cursor changed at byte %d of %d still decodes", i, len(b))
		}
	})
}

// TestForgedCursor: a cursor made the way the server makes it but without
// its key (the old unkeyed SHA-256 checksum, or an HMAC under a guessed key)
// is invalid_argument.
func TestForgedCursor(t *testing.T) {
	p := testPager(t)
	body, _ := json.Marshal(payload{Kind: "tenants", Scope: fingerprint([]string{"", "", ""}), Time: time.Now().UTC(), ID: uuid.New()})
	unkeyed := sha256.Sum256(append([]byte("tenant-registry cursor v1\x00"), body...))
	guessed, err := NewPager([]byte("tenant-registry-dev-only-api-key-secret-guess"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]string{
		"unkeyed checksum": base64.RawURLEncoding.EncodeToString(append(body, unkeyed[:sumLen]...)),
		"guessed key":      guessed.Encode("tenants", []string{"", "", ""}, Position{Time: time.Now(), ID: uuid.New()}),
		"no checksum":      base64.RawURLEncoding.EncodeToString(body),
	} {
		_, _, err := p.Start(Request{Kind: "tenants", Scope: []string{"", "", ""}, Cursor: c})
		if got := errs.CodeOf(err); got != errs.Invalid {
			t.Errorf("%s: %v (code %q), want invalid", name, err, got)
		}
	}
}

func TestPageSize(t *testing.T) {
	p := testPager(t)
	for _, c := range []struct {
		in   int32
		want int
		err  bool
	}{{0, DefaultPageSize, false}, {1, 1, false}, {500, 500, false}, {501, MaxPageSize, false}, {-1, 0, true}} {
		got, _, err := p.Start(Request{Kind: "k", PageSize: c.in})
		if got != c.want || (err != nil) != c.err {
			t.Errorf("page size %d: %d, %v; want %d, error %v", c.in, got, err, c.want, c.err)
		}
	}
}
