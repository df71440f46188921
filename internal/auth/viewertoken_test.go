package auth_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/auth"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/principal"
)

const viewerSecret = "viewer-test-secret-0123456789abcdef"

func TestViewerTokens(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	vt := auth.NewViewerTokens([]byte(viewerSecret), clock)
	grant := principal.Viewer{GroupID: "00000000-0000-0000-0000-000000000001", ActorID: "user:1", IsAdmin: true, ViewAction: "audit.log.view", KeyID: "k1"}
	tok, issued := vt.Issue(grant)
	if !strings.HasPrefix(tok, "rtv1.") {
		t.Fatalf("token %q does not start rtv1.", tok)
	}
	if want := now.Add(5 * time.Minute); !issued.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %s, want %s (5 minutes)", issued.ExpiresAt, want)
	}
	got, err := vt.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	grant.ExpiresAt = now.Add(5 * time.Minute)
	if got != grant {
		t.Errorf("Verify = %+v, want %+v", got, grant)
	}

	// A flipped payload byte, a token from another secret, an expired one.
	payload := strings.Split(tok, ".")[1]
	body, _ := base64.RawURLEncoding.DecodeString(payload)
	forged := strings.Replace(string(body), `"user:1"`, `"user:2"`, 1)
	tampered := strings.Replace(tok, payload, base64.RawURLEncoding.EncodeToString([]byte(forged)), 1)
	other, _ := auth.NewViewerTokens([]byte("another-secret-0123456789abcdef-xyz"), clock).Issue(grant)
	later := auth.NewViewerTokens([]byte(viewerSecret), func() time.Time { return now.Add(5 * time.Minute) })
	for _, tc := range []struct {
		name  string
		vt    *auth.ViewerTokens
		token string
	}{
		{"tampered payload", vt, tampered},
		{"other secret", vt, other},
		{"expired", later, tok},
		{"truncated", vt, tok[:len(tok)-3]},
		{"no signature", vt, "rtv1." + payload},
		{"prefix only", vt, "rtv1."},
		{"a jwt", vt, "eyJhbGciOiJSUzI1NiJ9.e30.sig"},
		{"huge", vt, "rtv1." + strings.Repeat("A", 5000) + ".x"},
	} {
		if _, err := tc.vt.Verify(tc.token); errs.CodeOf(err) != errs.Unauthenticated {
			t.Errorf("%s: Verify = %v, want unauthenticated", tc.name, err)
		}
	}
	// Just before expiry it still holds.
	if _, err := auth.NewViewerTokens([]byte(viewerSecret), func() time.Time { return now.Add(5*time.Minute - time.Second) }).Verify(tok); err != nil {
		t.Errorf("a second before expiry: %v", err)
	}
}

// TestAuthenticateViewer: the authenticator takes a viewer token on the
// bearer header when told to, as a role-less caller of the group's tenant
// that Authorize lets read the audit log only.
func TestAuthenticateViewer(t *testing.T) {
	vt := auth.NewViewerTokens([]byte(viewerSecret), time.Now)
	tok, _ := vt.Issue(principal.Viewer{GroupID: "00000000-0000-0000-0000-000000000001", ActorID: "u1", ViewAction: "audit.log.view", KeyID: "k"})
	if _, err := auth.NewAuthenticator(nil, true).Authenticate(context.Background(), bearer(tok)); errs.CodeOf(err) != errs.Unauthenticated {
		t.Errorf("without WithViewerTokens: %v, want unauthenticated", err)
	}
	p, err := auth.NewAuthenticator(nil, false).WithViewerTokens(vt).Authenticate(context.Background(), bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	if p.Viewer == nil || p.TenantID != "00000000-0000-0000-0000-000000000001" || p.Subject != "u1" || len(p.Roles) != 0 {
		t.Fatalf("principal = %+v, want the viewer u1 of tenant …0001 without roles", p)
	}
	for _, tc := range []struct {
		proc string
		ok   bool
	}{
		{"/tenantregistry.v1.AuditService/ListEvents", true},
		{"/tenantregistry.v1.AuditService/ExportEvents", true},
		{"/tenantregistry.v1.AuditService/AppendEvent", false},
		{"/tenantregistry.v1.AuditService/VerifyAuditChain", false},
		{"/tenantregistry.v1.TenantService/GetTenant", false},
		{"/tenantregistry.v1.ProjectService/ListProjects", false},
	} {
		_, err := auth.Authorize(p, tc.proc)
		if got := err == nil; got != tc.ok {
			t.Errorf("Authorize(viewer, %s) = %v, want allowed %v", tc.proc, err, tc.ok)
		}
		if err != nil && errs.CodeOf(err) != errs.Forbidden {
			t.Errorf("Authorize(viewer, %s) = %v, want forbidden", tc.proc, err)
		}
	}
}
