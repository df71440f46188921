package evidence_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/evidence"
)

// rfc8032Seed is the private key of RFC 8032's first Ed25519 test vector.
const rfc8032Seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"

func testKey(t *testing.T) (*evidence.SigningKey, ed25519.PrivateKey) {
	t.Helper()
	seed, _ := hex.DecodeString(rfc8032Seed)
	priv := ed25519.NewKeyFromSeed(seed)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k, err := evidence.ParseSigningKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return k, priv
}

// TestEncoding: the signed bytes are exactly the documented eight lines, and
// signature, digest hash and key id are what an independent implementation
// (the standard library on those bytes) computes.
func TestEncoding(t *testing.T) {
	k, priv := testKey(t)
	// RFC 8032 test 1's public key, inside its PKIX DER prefix.
	pubDER, _ := hex.DecodeString("302a300506032b6570032100" + "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
	sum := sha256.Sum256(pubDER)
	if got, want := k.ID(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("key id = %s, want %s", got, want)
	}
	d := evidence.Digest{
		GroupID: "00000000-0000-0000-0000-000000000001", FirstSeq: 11, LastSeq: 207,
		HeadHash:       strings.Repeat("ab", 32),
		PrevDigestHash: strings.Repeat("0f", 32),
		CreatedAt:      time.Date(2026, 12, 2, 1, 0, 0, 5_000_999, time.FixedZone("CET", 3600)),
		KeyID:          k.ID(),
	}
	want := "tenant-registry-audit-digest/v1\n" +
		"group_id=00000000-0000-0000-0000-000000000001\n" +
		"first_seq=11\n" +
		"last_seq=207\n" +
		"head_hash=" + strings.Repeat("ab", 32) + "\n" +
		"prev_digest_hash=" + strings.Repeat("0f", 32) + "\n" +
		"created_at=2026-12-02T00:00:00.005000Z\n" +
		"key_id=" + hex.EncodeToString(sum[:]) + "\n"
	if got := string(d.Encode()); got != want {
		t.Errorf("encoding:\n%q\nwant\n%q", got, want)
	}
	h := sha256.Sum256([]byte(want))
	if got, want := d.Hash(), hex.EncodeToString(h[:]); got != want {
		t.Errorf("digest hash = %s, want %s", got, want)
	}
	sig, err := k.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sig, base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(want))); got != want {
		t.Errorf("signature = %s, want %s", got, want)
	}
	pub, err := evidence.ParsePublicKeyPEM(k.PublicKeyPEM())
	if err != nil || pub.ID != k.ID() {
		t.Fatalf("public key: %+v, %v", pub, err)
	}
	if !d.Verify(pub.Key, sig) {
		t.Error("the signature does not verify")
	}
	d.LastSeq++
	if d.Verify(pub.Key, sig) {
		t.Error("the signature verifies for another digest")
	}
	d.LastSeq--
	d.KeyID = strings.Repeat("0", 64)
	if _, err := k.Sign(d); err == nil {
		t.Error("signing a digest naming another key: no error")
	}
}

func TestParseSigningKeyRefuses(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	for name, in := range map[string]string{
		"empty":      "",
		"not PEM":    "hello",
		"public key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		"garbage":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("nope")})),
	} {
		if _, err := evidence.ParseSigningKey([]byte(in)); err == nil {
			t.Errorf("%s: parsed, want an error", name)
		}
	}
}
