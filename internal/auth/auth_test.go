package auth_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/internal/auth"
	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/principal"
)

const audience = "tenant-registry"

func bearer(tok string) http.Header {
	return http.Header{"Authorization": []string{"Bearer " + tok}}
}

func TestAuthenticate(t *testing.T) {
	is := oidctest.New()
	defer is.Close()
	other := oidctest.New() // a different issuer with its own keys
	defer other.Close()
	authn := auth.NewAuthenticator(auth.NewVerifier(is.URL(), audience, clock.System), false)
	good := oidctest.Claims{Subject: "u1", Name: "Ursula", TenantID: "t1", Audience: []string{audience}, Roles: []string{"IT_ADMIN"}}

	with := func(f func(c *oidctest.Claims)) string {
		c := good
		f(&c)
		return is.Token(c)
	}
	cases := []struct {
		name   string
		header http.Header
		want   errs.Code
	}{
		{"no token", http.Header{}, errs.Unauthenticated},
		{"not bearer", http.Header{"Authorization": []string{"Basic dTpw"}}, errs.Unauthenticated},
		{"garbage", bearer("not.a.jwt"), errs.Unauthenticated},
		{"expired", bearer(with(func(c *oidctest.Claims) { c.Expiry = time.Now().Add(-2 * auth.Leeway) })), errs.Unauthenticated},
		{"wrong issuer", bearer(other.Token(good)), errs.Unauthenticated},
		{"wrong issuer claim", bearer(with(func(c *oidctest.Claims) { c.Issuer = "https://evil.example" })), errs.Unauthenticated},
		{"wrong audience", bearer(with(func(c *oidctest.Claims) { c.Audience = []string{"account"} })), errs.Unauthenticated},
		{"bad signature", bearer(with(func(c *oidctest.Claims) { c.SignWith = oidctest.NewKey() })), errs.Unauthenticated},
		{"unknown key id", bearer(with(func(c *oidctest.Claims) { c.KeyID = "nope" })), errs.Unauthenticated},
		{"expired within leeway", bearer(with(func(c *oidctest.Claims) { c.Expiry = time.Now().Add(-auth.Leeway / 2) })), ""},
		{"good", bearer(is.Token(good)), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := authn.Authenticate(context.Background(), c.header)
			if got := errs.CodeOf(err); got != c.want {
				t.Fatalf("code = %q (%v), want %q", got, err, c.want)
			}
			if err == nil && (p.Subject != "u1" || p.TenantID != "t1" || !p.HasRole("IT_ADMIN") || p.Name != "Ursula") {
				t.Errorf("principal = %+v", p)
			}
		})
	}

	// A display name longer than an audit actor's is cut to fit, on a
	// character boundary.
	long := good
	long.Name = strings.Repeat("名", 300)
	if p, err := authn.Authenticate(context.Background(), bearer(is.Token(long))); err != nil || utf8.RuneCountInString(p.Name) > 255 || !utf8.ValidString(p.Name) || !strings.HasPrefix(p.Name, "名名") {
		t.Errorf("a 300-character name: %d characters %q, %v; want at most 255", utf8.RuneCountInString(p.Name), p.Name, err)
	}

	// Key rotation: a token signed with a new key verifies (the key set is
	// refetched for the unknown kid).
	is.Rotate()
	if _, err := authn.Authenticate(context.Background(), bearer(is.Token(good))); err != nil {
		t.Errorf("after key rotation: %v", err)
	}
}

func TestLazyDiscovery(t *testing.T) {
	is := oidctest.New()
	defer is.Close()
	is.SetDown(true)
	now := time.Now()
	clock := func() time.Time { return now }
	authn := auth.NewAuthenticator(auth.NewVerifier(is.URL(), audience, clock), false)
	tok := is.Token(oidctest.Claims{Subject: "s", Audience: []string{audience}})
	_, err := authn.Authenticate(context.Background(), bearer(tok))
	if got, want := errs.CodeOf(err), errs.Unavailable; got != want {
		t.Fatalf("while the issuer is down: %q (%v), want %q", got, err, want)
	}
	is.SetDown(false)
	now = now.Add(3 * time.Second) // past the retry spacing
	if _, err := authn.Authenticate(context.Background(), bearer(tok)); err != nil {
		t.Fatalf("after the issuer came up: %v", err)
	}
}

func TestAnonymous(t *testing.T) {
	cases := []struct {
		name      string
		anonymous bool
		want      errs.Code
	}{
		{"dev", true, ""},
		{"stage/prod", false, errs.Unauthenticated},
	}
	for _, c := range cases {
		p, err := auth.NewAuthenticator(nil, c.anonymous).Authenticate(context.Background(), http.Header{})
		if got := errs.CodeOf(err); got != c.want {
			t.Errorf("%s: %q (%v), want %q", c.name, got, err, c.want)
		}
		if err == nil && !p.HasRole(principal.RolePlatformAdmin) {
			t.Errorf("%s: dev principal %+v is no platform admin", c.name, p)
		}
	}
	// A token without a configured issuer is refused, even in dev.
	_, err := auth.NewAuthenticator(nil, true).Authenticate(context.Background(), bearer("x.y.z"))
	if errs.CodeOf(err) != errs.Unauthenticated {
		t.Errorf("token without issuer: %v", err)
	}
}

// TestEveryRPCHasARule fails when an RPC of the protos has no line in
// auth.Rules, or a rule names a procedure that does not exist or a tenant
// field the request does not have.
func TestEveryRPCHasARule(t *testing.T) {
	seen := map[string]bool{}
	protoregistry.GlobalFiles.RangeFilesByPackage("tenantregistry.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				proc := "/" + string(sd.FullName()) + "/" + string(md.Name())
				seen[proc] = true
				rule, ok := auth.Rules[proc]
				if !ok {
					t.Errorf("%s has no rule in auth.Rules", proc)
					continue
				}
				if rule.TenantField != "" {
					f := md.Input().Fields().ByName(protoreflect.Name(rule.TenantField))
					if f == nil || f.Kind() != protoreflect.StringKind {
						t.Errorf("%s: rule names tenant field %q, which %s has not", proc, rule.TenantField, md.Input().FullName())
					}
				}
			}
		}
		return true
	})
	if len(seen) < 20 {
		t.Fatalf("found only %d RPCs: are the generated protos linked in?", len(seen))
	}
	for proc := range auth.Rules {
		if !seen[proc] {
			t.Errorf("rule for %s, which is no RPC", proc)
		}
	}
}

// whoMay is the "who" column of the README's API table written out per RPC,
// independently of auth.Rules, so a wrong rule fails here. Platform admins
// may do everything; "user" is any tenant user (IT_ADMINs included).
var whoMay = map[string]string{
	"/tenantregistry.v1.TenantService/CreateTenant":           "",
	"/tenantregistry.v1.TenantService/GetTenant":              "user it_admin",
	"/tenantregistry.v1.TenantService/GetTenantBySlug":        "user it_admin service",
	"/tenantregistry.v1.TenantService/ListTenants":            "",
	"/tenantregistry.v1.TenantService/ActivateTenant":         "",
	"/tenantregistry.v1.TenantService/CancelTenant":           "",
	"/tenantregistry.v1.TenantService/RetryProvisioning":      "",
	"/tenantregistry.v1.TenantService/UpdateTenant":           "",
	"/tenantregistry.v1.TenantService/DeleteTenant":           "",
	"/tenantregistry.v1.TenantService/RestoreTenant":          "",
	"/tenantregistry.v1.TenantService/ExportTenant":           "it_admin",
	"/tenantregistry.v1.ProjectService/CreateProject":         "it_admin",
	"/tenantregistry.v1.ProjectService/ListProjects":          "user it_admin",
	"/tenantregistry.v1.ProjectService/GetProject":            "user it_admin",
	"/tenantregistry.v1.ProjectService/UpdateProject":         "it_admin",
	"/tenantregistry.v1.ProjectService/DeleteProject":         "it_admin",
	"/tenantregistry.v1.TenantService/InviteUser":             "it_admin",
	"/tenantregistry.v1.SsoService/SetIdpConfig":              "it_admin",
	"/tenantregistry.v1.SsoService/GetIdpConfig":              "it_admin",
	"/tenantregistry.v1.SsoService/DeleteIdpConfig":           "it_admin",
	"/tenantregistry.v1.EntitlementService/ListEntitlements":  "user it_admin",
	"/tenantregistry.v1.EntitlementService/GrantEntitlement":  "",
	"/tenantregistry.v1.EntitlementService/RevokeEntitlement": "",
	"/tenantregistry.v1.CatalogService/ListProducts":          "user it_admin",
	"/tenantregistry.v1.CatalogService/RequestProduct":        "it_admin",
	"/tenantregistry.v1.CatalogService/StartTrial":            "it_admin",
	"/tenantregistry.v1.ApiKeyService/CreateApiKey":           "it_admin",
	"/tenantregistry.v1.ApiKeyService/ListApiKeys":            "it_admin",
	"/tenantregistry.v1.ApiKeyService/RevokeApiKey":           "it_admin",
	"/tenantregistry.v1.ApiKeyService/RotateApiKey":           "it_admin",
	"/tenantregistry.v1.InternalService/VerifyApiKey":         "service",
	"/tenantregistry.v1.InternalService/ResolveClaims":        "service",
	"/tenantregistry.v1.AuditService/AppendEvent":             "it_admin service",
	"/tenantregistry.v1.AuditService/ListEvents":              "it_admin",
	"/tenantregistry.v1.AuditService/ExportEvents":            "it_admin",
	"/tenantregistry.v1.AuditService/VerifyAuditChain":        "it_admin",
	"/tenantregistry.v1.AuditService/CreateDigest":            "it_admin",
	"/tenantregistry.v1.AuditService/ListDigests":             "it_admin",
	"/tenantregistry.v1.AuditService/ListPublicKeys":          "it_admin",
	"/tenantregistry.v1.WebhookService/CreateEndpoint":        "",
	"/tenantregistry.v1.WebhookService/ListEndpoints":         "",
	"/tenantregistry.v1.WebhookService/GetEndpoint":           "",
	"/tenantregistry.v1.WebhookService/DeleteEndpoint":        "",
	"/tenantregistry.v1.WebhookService/RotateEndpointSecret":  "",
	"/tenantregistry.v1.WebhookService/ListDeliveries":        "",
	"/tenantregistry.v1.WebhookService/RetryDelivery":         "",
}

func TestAuthorize(t *testing.T) {
	callers := map[string]principal.Principal{
		"admin":    {Subject: "a", Roles: []string{principal.RolePlatformAdmin}},
		"user":     {Subject: "u", TenantID: "t1"},
		"it_admin": {Subject: "i", TenantID: "t1", Roles: []string{principal.RoleITAdmin}},
		"service":  {Subject: "s", Type: principal.ActorService, Roles: []string{principal.RoleInternal}},
		"nobody":   {Subject: "n"}, // a token with no tenant and no role
	}
	if len(whoMay) != len(auth.Rules) {
		t.Errorf("whoMay has %d RPCs, auth.Rules %d", len(whoMay), len(auth.Rules))
	}
	for proc, may := range whoMay {
		allowed := strings.Fields(may)
		for name, p := range callers {
			want := name == "admin" || slices.Contains(allowed, name) || (name == "it_admin" && slices.Contains(allowed, "user"))
			_, err := auth.Authorize(p, proc)
			if got := err == nil; got != want {
				t.Errorf("%s calling %s: allowed = %v, want %v", name, proc, got, want)
			}
			if err != nil && errs.CodeOf(err) != errs.Forbidden {
				t.Errorf("%s calling %s: %v, want permission denied", name, proc, err)
			}
		}
	}
	if _, err := auth.Authorize(callers["admin"], "/tenantregistry.v1.TenantService/Unknown"); err == nil || !strings.Contains(err.Error(), "no access rule") {
		t.Errorf("unknown procedure: %v, want refused", err)
	}
}
