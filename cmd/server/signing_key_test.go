package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/evidence"
	"github.com/platform/tenant-registry/internal/pgtest"
)

// signingKeyFile writes a new Ed25519 key as AUDIT_SIGNING_KEY_FILE holds it
// (PKCS#8 PEM) and returns its path.
func signingKeyFile(t *testing.T) string {
	t.Helper()
	k, err := evidence.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "signing.key", k.PrivateKeyPEM())
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSigningKeyStartup: in stage, a replica without a usable
// AUDIT_SIGNING_KEY_FILE does not start, and says why naming the variable:
// unset, a file that is not there, not PEM, or a key that is not Ed25519.
func TestSigningKeyStartup(t *testing.T) {
	url := pgtest.MigratedURL(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecFile := writeFile(t, "ec.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	cases := []struct {
		name, file, want string
	}{
		{"unset", "", "AUDIT_SIGNING_KEY_FILE: required when APP_ENV=stage"},
		{"missing file", filepath.Join(t.TempDir(), "nope.key"), "AUDIT_SIGNING_KEY_FILE: read the key file"},
		{"not PEM", writeFile(t, "junk.key", []byte("not a key")), `not a PEM "PRIVATE KEY"`},
		{"ECDSA key", ecFile, "not an Ed25519 key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{
				"APP_ENV": "stage", "ADDR": freeAddr(t), "DATABASE_URL": url, "LOG_LEVEL": "error",
				"KEYCLOAK_ISSUER": "https://kc.example/realms/platform", "KEYCLOAK_ADMIN_URL": "https://kc.example",
				"KEYCLOAK_CLIENT_SECRET": "x", "API_KEY_SECRET": strings.Repeat("k", 40),
				"IDP_SECRET_KEY": "cm9sbG91dC10ZXN0LWlkcC1rZXktMzItYnl0ZXMhISE=", "OTEL_SDK_DISABLED": "true",
				"AUDIT_SIGNING_KEY_FILE": tc.file,
			}
			err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "AUDIT_SIGNING_KEY_FILE") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("start-up = %v, want an error naming AUDIT_SIGNING_KEY_FILE with %q", err, tc.want)
			}
		})
	}
}
