package secret_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/platform/tenant-registry/internal/secret"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, secret.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newBox(t *testing.T, key []byte) *secret.Box {
	t.Helper()
	b, err := secret.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpen(t *testing.T) {
	box := newBox(t, newKey(t))
	plain := []byte("client-secret-value")
	sealed, err := box.Seal(plain, []byte("tenant_idp_config:1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatalf("sealed value contains the plaintext")
	}
	got, err := box.Open(sealed, []byte("tenant_idp_config:1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, want %q", got, plain)
	}
	again, _ := box.Seal(plain, []byte("tenant_idp_config:1"))
	if bytes.Equal(again, sealed) {
		t.Fatalf("two seals of one value are equal: the nonce is not random")
	}
}

func TestOpenRefuses(t *testing.T) {
	key := newKey(t)
	box := newBox(t, key)
	other := newBox(t, newKey(t))
	sealed, err := box.Seal([]byte("s3cret"), []byte("row-1"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for _, tc := range []struct {
		name   string
		box    *secret.Box
		sealed []byte
		aad    string
		want   error
	}{
		{"other key", other, sealed, "row-1", secret.ErrWrongKey},
		{"other row", box, sealed, "row-2", secret.ErrMalformed},
		{"altered", box, flipped, "row-1", secret.ErrMalformed},
		{"truncated", box, sealed[:12], "row-1", secret.ErrMalformed},
		{"not sealed", box, []byte("plaintext"), "row-1", secret.ErrMalformed},
		{"empty", box, nil, "row-1", secret.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.box.Open(tc.sealed, []byte(tc.aad))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	key := newKey(t)
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"padded", base64.StdEncoding.EncodeToString(key), true},
		{"unpadded", base64.RawStdEncoding.EncodeToString(key), true},
		{"short", base64.StdEncoding.EncodeToString(key[:16]), false},
		{"not base64", "not base64 at all!", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := secret.ParseKey(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseKey(%q): err %v, want ok=%v", tc.in, err, tc.ok)
			}
			if tc.ok && !bytes.Equal(got, key) {
				t.Fatalf("ParseKey = %x, want %x", got, key)
			}
		})
	}
	if _, err := secret.NewBox(key[:31]); err == nil {
		t.Fatalf("NewBox accepted a 31-byte key")
	}
}
