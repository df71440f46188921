package apikey

import (
	"regexp"
	"strings"
	"testing"
)

// keyShape is the public key format: "trk_" and 43 base64url characters,
// the last one with its 2 padding bits zero (one spelling per key).
var keyShape = regexp.MustCompile(`^trk_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$`)

// FuzzWellFormed: the key parser never panics, accepts exactly the keys of
// the public format, and what it accepts decodes to 32 bytes that spell the
// key again. Seeds: testdata/fuzz/FuzzWellFormed.
func FuzzWellFormed(f *testing.F) {
	for range 3 {
		k, err := newKey()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(k)
		f.Add(k[:len(k)-1] + "B") // padding bits set
		f.Add(k + "A")            // too long
		f.Add(strings.ToUpper(k[:4]) + k[4:])
	}
	f.Add("")
	f.Add("trk_")
	f.Add("trk_" + strings.Repeat("A", 43))
	f.Add("trk_" + strings.Repeat("=", 43))
	f.Add("trk_" + strings.Repeat("/", 43))
	f.Add("trk_" + strings.Repeat("é", 22))
	f.Fuzz(func(t *testing.T, s string) {
		ok := wellFormed(s)
		if want := keyShape.MatchString(s); ok != want {
			t.Fatalf("wellFormed(%q) = %v, the format says %v", s, ok, want)
		}
		if !ok {
			return
		}
		raw, err := b64.Strict().DecodeString(s[len(KeyPrefix):])
		if err != nil || len(raw) != secretBytes || KeyPrefix+b64.EncodeToString(raw) != s {
			t.Fatalf("wellFormed(%q) but it does not round-trip: %v", s, err)
		}
		if p := displayPrefix(s); len(p) != len(KeyPrefix)+displayChars || !strings.HasPrefix(s, p) {
			t.Fatalf("displayPrefix(%q) = %q", s, p)
		}
	})
}
