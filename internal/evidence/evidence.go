// Package evidence is the audit log's signed evidence: the Ed25519 key that
// signs digests of a tenant's hash chain head (AUDIT_SIGNING_KEY_FILE), its
// public half and key id, and the exact bytes a digest's signature covers.
// It holds no database code: auditctl verify-offline uses it as the
// service does.
//
// A digest's signed encoding is eight lines of ASCII, each ending in one
// line feed (0x0A), in this order, with no spaces and nothing else:
//
//	tenant-registry-audit-digest/v1
//	group_id=<tenant id: lower-case UUID, 36 characters>
//	first_seq=<decimal, no sign, no leading zeros>
//	last_seq=<decimal>
//	head_hash=<64 lower-case hex digits: the hash of the event at last_seq>
//	prev_digest_hash=<64 lower-case hex digits, or empty for a tenant's first digest>
//	created_at=<UTC time as 2006-01-02T15:04:05.000000Z: always six fractional digits>
//	key_id=<64 lower-case hex digits>
//
// signature = Ed25519(private key, encoding), standard base64 with padding;
// digest_hash = hex(SHA-256(encoding)), which the tenant's next digest
// names as its prev_digest_hash. key_id = hex(SHA-256(the public key's PKIX
// DER)), the DER inside the "PUBLIC KEY" PEM.
package evidence

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// EncodingHeader is the first line of a digest's signed encoding.
const EncodingHeader = "tenant-registry-audit-digest/v1"

// TimeLayout is how created_at is written in the signed encoding.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// SigningKey is an Ed25519 private key with its public half and key id.
type SigningKey struct {
	priv   ed25519.PrivateKey
	pub    ed25519.PublicKey
	id     string
	pubPEM string
}

// LoadSigningKeyFile reads a PKCS#8 PEM ("PRIVATE KEY") Ed25519 key, as
// `openssl genpkey -algorithm ed25519` writes it.
func LoadSigningKeyFile(path string) (*SigningKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the key file: %w", err)
	}
	k, err := ParseSigningKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParseSigningKey parses a PKCS#8 PEM Ed25519 private key.
func ParseSigningKey(pemBytes []byte) (*SigningKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New(`not a PEM "PRIVATE KEY" (PKCS#8); make one with: openssl genpkey -algorithm ed25519`)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#8 private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key; make one with: openssl genpkey -algorithm ed25519", key)
	}
	return newSigningKey(priv)
}

// GenerateSigningKey makes a new random key (APP_ENV=dev without a key
// file, and tests).
func GenerateSigningKey() (*SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate an Ed25519 key: %w", err)
	}
	return newSigningKey(priv)
}

func newSigningKey(priv ed25519.PrivateKey) (*SigningKey, error) {
	pub := priv.Public().(ed25519.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode the public key: %w", err)
	}
	return &SigningKey{
		priv: priv, pub: pub, id: keyIDOf(der),
		pubPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}, nil
}

// ID is the key id: hex(SHA-256(PKIX DER of the public key)).
func (k *SigningKey) ID() string { return k.id }

// PublicKeyPEM is the public key as a "PUBLIC KEY" PEM.
func (k *SigningKey) PublicKeyPEM() string { return k.pubPEM }

// PrivateKeyPEM is the private key as PKCS#8 PEM, the format
// AUDIT_SIGNING_KEY_FILE holds.
func (k *SigningKey) PrivateKeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		panic(err) // an Ed25519 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Sign signs d (whose KeyID must be k's) and answers the signature in
// standard base64.
func (k *SigningKey) Sign(d Digest) (string, error) {
	if d.KeyID != k.id {
		return "", fmt.Errorf("sign digest: key id %q is not the signing key's %q", d.KeyID, k.id)
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv, d.Encode())), nil
}

func keyIDOf(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// PublicKey is a verifying key as ListPublicKeys answers it.
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// ParsePublicKeyPEM parses a "PUBLIC KEY" PEM holding an Ed25519 key and
// answers it with its key id.
func ParsePublicKeyPEM(s string) (PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "PUBLIC KEY" {
		return PublicKey{}, errors.New(`not a PEM "PUBLIC KEY"`)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return PublicKey{}, fmt.Errorf("not a PKIX public key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return PublicKey{}, fmt.Errorf("a %T, not an Ed25519 key", key)
	}
	return PublicKey{ID: keyIDOf(block.Bytes), Key: pub}, nil
}

// Digest is what a digest's signature covers.
type Digest struct {
	GroupID           string
	FirstSeq, LastSeq int64
	HeadHash          string
	PrevDigestHash    string
	CreatedAt         time.Time
	KeyID             string
}

// Encode is the signed encoding (see the package comment). CreatedAt is
// cut to microseconds.
func (d Digest) Encode() []byte {
	var b strings.Builder
	line := func(k, v string) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteString(EncodingHeader)
	b.WriteByte('\n')
	line("group_id", d.GroupID)
	line("first_seq", strconv.FormatInt(d.FirstSeq, 10))
	line("last_seq", strconv.FormatInt(d.LastSeq, 10))
	line("head_hash", d.HeadHash)
	line("prev_digest_hash", d.PrevDigestHash)
	line("created_at", d.CreatedAt.UTC().Truncate(time.Microsecond).Format(TimeLayout))
	line("key_id", d.KeyID)
	return []byte(b.String())
}

// Hash is hex(SHA-256(Encode())): the digest's digest_hash.
func (d Digest) Hash() string {
	sum := sha256.Sum256(d.Encode())
	return hex.EncodeToString(sum[:])
}

// Verify reports whether signature (standard base64) is pub's signature of d.
func (d Digest) Verify(pub ed25519.PublicKey, signature string) bool {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, d.Encode(), sig)
}
