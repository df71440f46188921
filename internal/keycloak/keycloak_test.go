package keycloak_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
)

const (
	realm    = "tenants"
	clientID = "tenant-registry"
	secret   = "s3cr3t-DO-NOT-LEAK-7f2a"
)

// clock is an adjustable clock for token expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newAdapter(t *testing.T, f *keycloaktest.Fake, mod func(*keycloak.Config)) *keycloak.HTTPAdapter {
	t.Helper()
	cfg := keycloak.Config{
		BaseURL: f.URL(), Realm: realm, ClientID: clientID, ClientSecret: secret,
		HTTPClient:       f.Client(),
		EmailClientID:    "portal",
		EmailRedirectURI: "https://portal.example.com/welcome",
		EmailLifespan:    24 * time.Hour,
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := keycloak.NewHTTPAdapter(cfg)
	if err != nil {
		t.Fatalf("NewHTTPAdapter: %v", err)
	}
	return a
}

func newFake(t *testing.T) *keycloaktest.Fake {
	f := keycloaktest.New(t, realm, clientID, secret)
	f.AddClient("portal", "https://portal.example.com/*")
	return f
}

var acme = keycloak.ProvisionRequest{Slug: "acme", Name: "Acme Inc.", AdminEmail: "Ada@Acme.example", AdminName: "Ada King Lovelace"}

// checkProvisioned asserts the fake holds exactly one org with alias acme,
// one user, that user as the org's only member with IT_ADMIN, and wantEmails
// emails sent.
func checkProvisioned(t *testing.T, f *keycloaktest.Fake, res keycloak.ProvisionResult, wantEmails int) {
	t.Helper()
	var orgs []keycloaktest.Org
	for _, o := range f.Orgs() {
		if o.Alias == "acme" {
			orgs = append(orgs, o)
		}
	}
	if got, want := len(orgs), 1; got != want {
		t.Fatalf("orgs with alias acme = %d, want %d: %+v", got, want, orgs)
	}
	if got, want := orgs[0].ID, res.OrgID; got != want {
		t.Errorf("org id = %q, want result's %q", got, want)
	}
	users := f.Users()
	if got, want := len(users), 1; got != want {
		t.Fatalf("users = %d, want %d: %+v", got, want, users)
	}
	if got, want := users[0].ID, res.AdminUserID; got != want {
		t.Errorf("user id = %q, want result's %q", got, want)
	}
	if got, want := f.Members(res.OrgID), []string{res.AdminUserID}; !slices.Equal(got, want) {
		t.Errorf("members = %v, want %v", got, want)
	}
	if got, want := f.RoleMappings(res.AdminUserID), []string{"IT_ADMIN"}; !slices.Equal(got, want) {
		t.Errorf("role mappings = %v, want %v", got, want)
	}
	if got, want := f.EmailsSent(res.AdminUserID), wantEmails; got != want {
		t.Errorf("emails sent = %d, want %d", got, want)
	}
}

func TestProvisionHappyPath(t *testing.T) {
	f := newFake(t)
	a := newAdapter(t, f, nil)

	res, err := a.Provision(t.Context(), acme)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	checkProvisioned(t, f, res, 1)

	org := f.Orgs()[0]
	if got, want := org.Alias, "acme"; got != want {
		t.Errorf("org alias = %q, want %q", got, want)
	}
	if got, want := org.Name, "Acme Inc."; got != want {
		t.Errorf("org name = %q, want %q", got, want)
	}
	if got, want := org.Attributes["alias"], []string{"acme"}; !slices.Equal(got, want) {
		t.Errorf("org alias attribute = %v, want %v", got, want)
	}
	if got := len(org.Domains); got != 0 {
		t.Errorf("org domains = %v, want none by default", org.Domains)
	}
	u := f.Users()[0]
	for _, c := range []struct{ name, got, want string }{
		{"username", u.Username, "ada@acme.example"},
		{"email", u.Email, "ada@acme.example"},
		{"firstName", u.FirstName, "Ada"},
		{"lastName", u.LastName, "King Lovelace"},
	} {
		if c.got != c.want {
			t.Errorf("user %s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !u.Enabled {
		t.Error("user not enabled")
	}
	mail := f.Emails(res.AdminUserID)[0]
	if got, want := mail.Actions, []string{"VERIFY_EMAIL", "UPDATE_PASSWORD"}; !slices.Equal(got, want) {
		t.Errorf("email actions = %v, want %v", got, want)
	}
	if got, want := fmt.Sprint(mail.ClientID, " ", mail.RedirectURI, " ", mail.Lifespan), "portal https://portal.example.com/welcome 86400"; got != want {
		t.Errorf("email params = %q, want %q", got, want)
	}
	if got, want := res.InviteURL, f.URL()+"/realms/tenants/account"; got != want {
		t.Errorf("InviteURL = %q, want %q", got, want)
	}
	if got, want := f.TokensIssued(), 1; got != want {
		t.Errorf("tokens issued = %d, want %d", got, want)
	}
	wantReqs := []string{
		"POST /realms/tenants/protocol/openid-connect/token",
		"POST /admin/realms/tenants/organizations",
		"GET /admin/realms/tenants/users",
		"POST /admin/realms/tenants/users",
		"POST /admin/realms/tenants/organizations/" + res.OrgID + "/members",
		"GET /admin/realms/tenants/users/" + res.AdminUserID + "/role-mappings/realm/available",
		"POST /admin/realms/tenants/users/" + res.AdminUserID + "/role-mappings/realm",
		"PUT /admin/realms/tenants/users/" + res.AdminUserID + "/execute-actions-email",
	}
	if got := f.Requests(); !slices.Equal(got, wantReqs) {
		t.Errorf("requests:\n got  %q\n want %q", got, wantReqs)
	}
}

func TestProvisionIdempotent(t *testing.T) {
	tests := []struct {
		name string
		// setup preloads the fake and may adjust the request; it returns the
		// org and user ids the result must reuse ("" = any).
		setup      func(t *testing.T, f *keycloaktest.Fake, a *keycloak.HTTPAdapter, req *keycloak.ProvisionRequest) (orgID, userID string)
		wantEmails int
		noOrgPost  bool
	}{
		{
			name: "org alias exists (made elsewhere, no alias attribute)",
			setup: func(t *testing.T, f *keycloaktest.Fake, _ *keycloak.HTTPAdapter, _ *keycloak.ProvisionRequest) (string, string) {
				f.AddOrg("zeta", "Zeta") // someone else, sorted after acme
				return f.AddOrg("acme", "Acme (old name)"), ""
			},
			wantEmails: 1,
		},
		{
			name: "user exists",
			setup: func(t *testing.T, f *keycloaktest.Fake, _ *keycloak.HTTPAdapter, _ *keycloak.ProvisionRequest) (string, string) {
				return "", f.AddUser("ada@acme.example")
			},
			wantEmails: 1,
		},
		{
			name: "known OrgID from an earlier attempt",
			setup: func(t *testing.T, f *keycloaktest.Fake, _ *keycloak.HTTPAdapter, req *keycloak.ProvisionRequest) (string, string) {
				req.OrgID = f.AddOrg("acme", "Acme Inc.")
				return req.OrgID, ""
			},
			wantEmails: 1,
			noOrgPost:  true,
		},
		{
			name: "stale OrgID",
			setup: func(t *testing.T, f *keycloaktest.Fake, _ *keycloak.HTTPAdapter, req *keycloak.ProvisionRequest) (string, string) {
				req.OrgID = "00000000-0000-4000-8000-000000000000"
				return "", ""
			},
			wantEmails: 1,
		},
		{
			name: "everything done before (member, role assigned)",
			setup: func(t *testing.T, f *keycloaktest.Fake, a *keycloak.HTTPAdapter, _ *keycloak.ProvisionRequest) (string, string) {
				res, err := a.Provision(t.Context(), acme)
				if err != nil {
					t.Fatalf("first Provision: %v", err)
				}
				return res.OrgID, res.AdminUserID
			},
			wantEmails: 2, // re-running re-sends the invite email
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			a := newAdapter(t, f, nil)
			req := acme
			wantOrg, wantUser := tt.setup(t, f, a, &req)
			before := len(f.Requests())

			res, err := a.Provision(t.Context(), req)
			if err != nil {
				t.Fatalf("Provision: %v", err)
			}
			if wantOrg != "" && res.OrgID != wantOrg {
				t.Errorf("OrgID = %q, want existing %q", res.OrgID, wantOrg)
			}
			if wantUser != "" && res.AdminUserID != wantUser {
				t.Errorf("AdminUserID = %q, want existing %q", res.AdminUserID, wantUser)
			}
			checkProvisioned(t, f, res, tt.wantEmails)
			if tt.noOrgPost && slices.Contains(f.Requests()[before:], "POST /admin/realms/tenants/organizations") {
				t.Error("created an organisation although req.OrgID exists")
			}
		})
	}
}

func TestProvisionConcurrentSameTenant(t *testing.T) {
	f := newFake(t)
	a := newAdapter(t, f, nil)
	const n = 8
	results := make([]keycloak.ProvisionResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = a.Provision(t.Context(), acme) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Provision %d: %v", i, errs[i])
		}
		if results[i] != results[0] {
			t.Errorf("result %d = %+v, want %+v", i, results[i], results[0])
		}
	}
	checkProvisioned(t, f, results[0], n)
	if got, want := f.TokensIssued(), 1; got != want {
		t.Errorf("tokens issued = %d, want %d (one shared fetch)", got, want)
	}
}

func TestTokenRefresh(t *testing.T) {
	tests := []struct {
		name       string
		between    func(f *keycloaktest.Fake, c *clock) // before the second Provision
		wantTokens int
	}{
		{"cached", func(*keycloaktest.Fake, *clock) {}, 1},
		{"cached until 30s before expires_in", func(_ *keycloaktest.Fake, c *clock) { c.Add(269 * time.Second) }, 1},
		{"refreshed near expires_in", func(_ *keycloaktest.Fake, c *clock) { c.Add(271 * time.Second) }, 2},
		{"refreshed after 401 (revoked on the server)", func(f *keycloaktest.Fake, _ *clock) { f.ExpireTokens() }, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			a := newAdapter(t, f, func(cfg *keycloak.Config) { cfg.Now = c.Now })
			if _, err := a.Provision(t.Context(), acme); err != nil {
				t.Fatalf("first Provision: %v", err)
			}
			tt.between(f, c)
			res, err := a.Provision(t.Context(), acme)
			if err != nil {
				t.Fatalf("second Provision: %v", err)
			}
			if got, want := f.TokensIssued(), tt.wantTokens; got != want {
				t.Errorf("tokens issued = %d, want %d", got, want)
			}
			checkProvisioned(t, f, res, 2)
		})
	}
}

func TestTokenExpiresMidFlow(t *testing.T) {
	f := newFake(t)
	a := newAdapter(t, f, nil)
	var once sync.Once
	f.SetHook(func(r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/members") {
			once.Do(f.ExpireTokens)
		}
	})
	res, err := a.Provision(t.Context(), acme)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	checkProvisioned(t, f, res, 1)
	if got, want := f.TokensIssued(), 2; got != want {
		t.Errorf("tokens issued = %d, want %d (one refresh)", got, want)
	}
}

func TestProvisionErrors(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*keycloak.Config)
		setup   func(f *keycloaktest.Fake)
		wantErr string // substring of the error
		status  int    // APIError status, 0 = don't check
	}{
		{
			name:    "keycloak down",
			setup:   func(f *keycloaktest.Fake) { f.SetDown(true) },
			wantErr: "keycloak: create organisation: fetch token: 503 Service Unavailable: no healthy upstream",
			status:  503,
		},
		{
			name: "keycloak goes down mid-flow",
			setup: func(f *keycloaktest.Fake) {
				f.SetHook(func(r *http.Request) {
					if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/users") {
						f.SetDown(true)
					}
				})
			},
			wantErr: "keycloak: create user: 503 Service Unavailable",
			status:  503,
		},
		{
			name:    "email fails",
			setup:   func(f *keycloaktest.Fake) { f.FailEmail(true) },
			wantErr: "keycloak: send actions email: 500 Internal Server Error: Failed to send execute actions email",
			status:  500,
		},
		{
			name:    "bad client secret",
			mod:     func(c *keycloak.Config) { c.ClientSecret = "wrong-" + secret },
			wantErr: "fetch token: 401 Unauthorized: unauthorized_client: Invalid client or Invalid client credentials",
			status:  401,
		},
		{
			name:    "name taken by another alias",
			setup:   func(f *keycloaktest.Fake) { f.AddOrg("acme-corp", "Acme Inc.") },
			wantErr: `keycloak: create organisation: 409 Conflict: A organization with the same name already exists. (and no organisation has alias "acme")`,
			status:  409,
		},
		{
			name:    "domain required (Keycloak < 26.4) but not configured",
			setup:   func(f *keycloaktest.Fake) { f.RequireDomain(true) },
			wantErr: "keycloak: create organisation: 400 Bad Request: You must provide at least one domain",
			status:  400,
		},
		{
			name:    "redirect URI not allowed for the email client",
			mod:     func(c *keycloak.Config) { c.EmailRedirectURI = "https://evil.example/" },
			wantErr: "keycloak: send actions email: 400 Bad Request: Invalid redirect uri.",
			status:  400,
		},
		{
			name:    "wrong realm",
			mod:     func(c *keycloak.Config) { c.Realm = "nope" },
			wantErr: "keycloak: create organisation: fetch token: 404 Not Found: Realm not found.",
			status:  404,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			a := newAdapter(t, f, tt.mod)
			_, err := a.Provision(t.Context(), acme)
			if err == nil {
				t.Fatal("Provision succeeded, want error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
			var apiErr *keycloak.APIError
			if tt.status != 0 && (!errors.As(err, &apiErr) || apiErr.StatusCode != tt.status) {
				t.Errorf("error = %#v, want an APIError with status %d", err, tt.status)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "fake-at-") {
				t.Errorf("error leaks the secret or a token: %q", err)
			}
		})
	}
}

func TestProvisionRecoversAfterEmailFailure(t *testing.T) {
	f := newFake(t)
	a := newAdapter(t, f, nil)
	f.FailEmail(true)
	first, err := a.Provision(t.Context(), acme)
	if err == nil {
		t.Fatal("Provision succeeded with failing email")
	}
	if first.OrgID == "" || first.AdminUserID == "" || first.InviteURL != "" {
		t.Errorf("partial result = %+v, want OrgID and AdminUserID but no InviteURL", first)
	}
	f.FailEmail(false)
	// The outbox retries without the OrgID (worst case): adopt by alias.
	res, err := a.Provision(t.Context(), acme)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if res.OrgID != first.OrgID || res.AdminUserID != first.AdminUserID {
		t.Errorf("retry result = %+v, want the first attempt's ids %+v", res, first)
	}
	if res.InviteURL == "" {
		t.Error("retry: no InviteURL")
	}
	checkProvisioned(t, f, res, 1)
}

func TestProvisionWithoutAdmin(t *testing.T) {
	f := newFake(t)
	a := newAdapter(t, f, func(c *keycloak.Config) { c.OrgDomainSuffix = "tenants.example.com" })
	f.RequireDomain(true)
	res, err := a.Provision(t.Context(), keycloak.ProvisionRequest{Slug: "acme", Name: "Acme Inc."})
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if res.OrgID == "" || res.AdminUserID != "" || res.InviteURL != "" {
		t.Errorf("result = %+v, want only OrgID", res)
	}
	orgs := f.Orgs()
	if got, want := len(orgs), 1; got != want {
		t.Fatalf("orgs = %d, want %d", got, want)
	}
	if got, want := fmt.Sprint(orgs[0].Domains), "[{acme.tenants.example.com false}]"; got != want {
		t.Errorf("domains = %s, want %s", got, want)
	}
	if got := len(f.Users()); got != 0 {
		t.Errorf("users = %d, want 0", got)
	}
	for _, r := range f.Requests() {
		if strings.Contains(r, "/users") {
			t.Errorf("unexpected request %q", r)
		}
	}
}

func TestPerCallTimeout(t *testing.T) {
	f := newFake(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the fake's Close
	f.SetHook(func(r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/organizations") {
			select { // hang until the client gives up
			case <-r.Context().Done():
			case <-release:
			}
		}
	})
	a := newAdapter(t, f, func(c *keycloak.Config) { c.Timeout = 100 * time.Millisecond })
	start := time.Now()
	_, err := a.Provision(t.Context(), acme)
	if err == nil {
		t.Fatal("Provision succeeded against a hanging server")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Provision took %v, want about the 100ms timeout", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "keycloak: create organisation:") {
		t.Errorf("error = %v, want a deadline error naming the step", err)
	}
}

func TestProvisionRespectsContext(t *testing.T) {
	f := newFake(t)
	a := newAdapter(t, f, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := a.Provision(ctx, acme); !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

func TestNewHTTPAdapterConfig(t *testing.T) {
	valid := keycloak.Config{BaseURL: "https://sso.example.com/", Realm: "r", ClientID: "c", ClientSecret: secret}
	tests := []struct {
		name    string
		mod     func(*keycloak.Config)
		wantErr string
	}{
		{"valid", func(*keycloak.Config) {}, ""},
		{"missing fields", func(c *keycloak.Config) { c.Realm, c.ClientSecret = "", "" }, "missing Realm, ClientSecret"},
		{"relative base", func(c *keycloak.Config) { c.BaseURL = "sso.example.com" }, "not an absolute http(s) URL"},
		{"redirect without client", func(c *keycloak.Config) { c.EmailRedirectURI = "https://x/" }, "EmailRedirectURI requires EmailClientID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mod(&cfg)
			_, err := keycloak.NewHTTPAdapter(cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), secret):
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestMock(t *testing.T) {
	tests := []struct {
		name string
		mock keycloak.Mock
		req  keycloak.ProvisionRequest
		want keycloak.ProvisionResult
	}{
		{
			name: "with admin",
			req:  keycloak.ProvisionRequest{Slug: "acme", Name: "Acme Inc.", AdminEmail: "ada+it@acme.example"},
			want: keycloak.ProvisionResult{
				OrgID: "mock-org-acme", AdminUserID: "mock-user-ada+it@acme.example",
				InviteURL: "http://localhost:8080/dev-invite/acme?email=ada%2Bit%40acme.example",
			},
		},
		{
			name: "without admin",
			req:  keycloak.ProvisionRequest{Slug: "acme", Name: "Acme Inc."},
			want: keycloak.ProvisionResult{OrgID: "mock-org-acme"},
		},
		{
			name: "custom base URL",
			mock: keycloak.Mock{BaseURL: "http://dev.local:3000"},
			req:  keycloak.ProvisionRequest{Slug: "beta", Name: "Beta", AdminEmail: "b@beta.example", OrgID: "mock-org-beta"},
			want: keycloak.ProvisionResult{
				OrgID: "mock-org-beta", AdminUserID: "mock-user-b@beta.example",
				InviteURL: "http://dev.local:3000/dev-invite/beta?email=b%40beta.example",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a keycloak.Adapter = tt.mock
			for range 2 { // deterministic: same answer every time
				got, err := a.Provision(t.Context(), tt.req)
				if err != nil {
					t.Fatalf("Provision: %v", err)
				}
				if got != tt.want {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}
