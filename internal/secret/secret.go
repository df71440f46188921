// Package secret seals small secrets (an IdP's client secret, a webhook
// endpoint's signing secret) for storage: AES-256-GCM under IDP_SECRET_KEY,
// with the key's id in front so that a wrong key is told apart from a
// damaged value.
//
// A sealed value is
//
//	"v1" | key id (8 bytes: SHA-256 of the key, first 8) | nonce (12) | ciphertext+tag
//
// and the caller's additional data (a row's id and column, say) is bound to
// it: a ciphertext copied into another row does not open.
package secret

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// KeySize is the length of an IDP_SECRET_KEY once base64-decoded.
const KeySize = 32

const (
	version  = "v1"
	idSize   = 8
	overhead = len(version) + idSize
)

// ErrWrongKey is returned by Open for a value sealed under another key.
var ErrWrongKey = errors.New("secret: sealed under another key")

// ErrMalformed is returned by Open for a value that is not a sealed secret
// or was altered.
var ErrMalformed = errors.New("secret: malformed or altered sealed value")

// Box seals and opens secrets under one key. It is safe for concurrent use.
type Box struct {
	id   [idSize]byte
	aead cipher.AEAD
}

// NewBox returns a Box for a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret: want a %d-byte key, got %d bytes", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	b := &Box{aead: aead}
	sum := sha256.Sum256(key)
	copy(b.id[:], sum[:idSize])
	return b, nil
}

// ParseKey decodes an IDP_SECRET_KEY: standard base64 (padded or not) of
// exactly 32 bytes.
func ParseKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("want base64 of 32 random bytes (openssl rand -base64 32)")
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("want base64 of %d bytes, got %d bytes", KeySize, len(key))
	}
	return key, nil
}

// KeyID is the key's public id (hex), safe to log.
func (b *Box) KeyID() string { return hex.EncodeToString(b.id[:]) }

// Seal encrypts plaintext, bound to aad.
func (b *Box) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secret: nonce: %w", err)
	}
	out := make([]byte, 0, overhead+len(nonce)+len(plaintext)+b.aead.Overhead())
	out = append(out, version...)
	out = append(out, b.id[:]...)
	out = append(out, nonce...)
	return b.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts a value Seal returned for the same aad.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	if err := b.Check(sealed); err != nil {
		return nil, err
	}
	ns := b.aead.NonceSize()
	if len(sealed) < overhead+ns+b.aead.Overhead() {
		return nil, ErrMalformed
	}
	nonce := sealed[overhead : overhead+ns]
	plain, err := b.aead.Open(nil, nonce, sealed[overhead+ns:], aad)
	if err != nil {
		return nil, ErrMalformed
	}
	return plain, nil
}

// Check tells whether sealed was sealed under this Box's key, without
// decrypting it: ErrWrongKey if under another key, ErrMalformed if it is not
// a sealed value at all. Start-up uses it to refuse a wrong IDP_SECRET_KEY.
func (b *Box) Check(sealed []byte) error {
	if len(sealed) < overhead || string(sealed[:len(version)]) != version {
		return ErrMalformed
	}
	if !bytes.Equal(sealed[len(version):overhead], b.id[:]) {
		return fmt.Errorf("%w (sealed under key id %x, this key is %s)", ErrWrongKey, sealed[len(version):overhead], b.KeyID())
	}
	return nil
}
