// Package keycloak is the seam between tenant-registry and Keycloak: it
// provisions a tenant's organisation and its first IT_ADMIN through the
// Keycloak 25/26 Admin REST API (HTTPAdapter), or pretends to (Mock, for dev).
package keycloak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/platform/tenant-registry/internal/text"
)

// Adapter provisions a tenant's organisation and its first admin. Provision must be
// idempotent: the service retries it (from a durable outbox) until it succeeds, so
// every step must tolerate having been done before (org exists → adopt the one with
// alias == slug; user exists → reuse; already a member → fine; role already assigned → fine).
type Adapter interface {
	Provision(ctx context.Context, req ProvisionRequest) (ProvisionResult, error)
}

// ProvisionRequest says which organisation (and optionally which admin) to provision.
type ProvisionRequest struct {
	Slug, Name            string // organisation alias (= slug) and name
	AdminEmail, AdminName string // optional: invite this person as IT_ADMIN
	OrgID                 string // known org id from an earlier partial attempt, if any (may be empty)
}

// ProvisionResult is what Provision produced (or adopted).
type ProvisionResult struct {
	OrgID       string
	AdminUserID string // empty when no admin was requested
	InviteURL   string // empty when no admin was invited
}

// AdminRole is the realm role given to a tenant's first admin.
const AdminRole = "IT_ADMIN"

// Defaults used by NewHTTPAdapter for zero Config fields.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultEmailLifespan = 72 * time.Hour
	// maxBody bounds how much of any response body is read.
	maxBody = 1 << 20
	// tokenMargin: a cached token is renewed this long before it expires.
	tokenMargin = 30 * time.Second
)

// APIError is an unexpected HTTP status from Keycloak. Message is Keycloak's
// errorMessage / error (+ error_description) or, failing that, the start of the body.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	s := strconv.Itoa(e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		s += " " + t
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Config configures an HTTPAdapter. BaseURL, Realm, ClientID and ClientSecret
// are required; every other field has a default.
type Config struct {
	// BaseURL is Keycloak's root, e.g. "https://sso.example.com" (include
	// "/auth" for pre-17 style deployments).
	BaseURL string
	// Realm holds the organisations, users and the IT_ADMIN role.
	Realm string
	// ClientID / ClientSecret of a confidential client with service accounts
	// enabled (needs manage-realm for organisations and manage-users).
	ClientID, ClientSecret string

	// HTTPClient defaults to a client with a 30s overall timeout.
	HTTPClient *http.Client
	// Timeout bounds every single request (token and Admin API), via its
	// context. Default DefaultTimeout (10s).
	Timeout time.Duration
	// Now is the clock used for token expiry. Default time.Now.
	Now func() time.Time

	// EmailClientID is the client_id passed to execute-actions-email: the
	// client whose redirect URIs EmailRedirectURI must match. Optional (without
	// it Keycloak sends the user to the account console afterwards).
	EmailClientID string
	// EmailRedirectURI is where the user lands after completing the emailed
	// actions. Optional; requires EmailClientID.
	EmailRedirectURI string
	// EmailLifespan is how long the emailed link is valid. Default
	// DefaultEmailLifespan (72h); sent in whole seconds.
	EmailLifespan time.Duration

	// InviteURL overrides the URL returned as ProvisionResult.InviteURL.
	// Default: the realm's account console, {BaseURL}/realms/{Realm}/account.
	InviteURL string
	// OrgDomainSuffix, when set, gives each new organisation the (unverified)
	// domain "<slug>.<suffix>". Keycloak before 26.4 requires at least one
	// domain per organisation; 26.4+ does not. Off by default.
	OrgDomainSuffix string
}

// HTTPAdapter provisions through the Keycloak Admin REST API with a
// client-credentials token. It is safe for concurrent use.
//
// Provision runs these steps, each idempotent so a retry after a partial
// failure is harmless:
//  1. token: client credentials, cached until 30s before expires_in; a 401
//     from the Admin API refreshes it once and retries that call once;
//  2. organisation: reuse req.OrgID if it still exists with alias == slug,
//     else create it (alias = slug, plus an "alias" attribute = slug so that
//     `?q=alias:<slug>` finds it); on 409 adopt the one with that alias;
//  3. admin user (if AdminEmail): find by exact email, else create
//     (username = email, required actions VERIFY_EMAIL and UPDATE_PASSWORD);
//     on 409 look it up again and reuse it;
//  4. membership: add the user to the organisation; 409 (already a member) is fine;
//  5. realm role IT_ADMIN: assign it unless already assigned;
//  6. execute-actions-email with VERIFY_EMAIL and UPDATE_PASSWORD. A failure
//     here (e.g. 500 "Failed to send execute actions email": no SMTP) fails
//     Provision; re-running it re-sends the email.
//
// On error, the returned ProvisionResult still holds the ids established so
// far (OrgID, AdminUserID), so the caller can record them for the retry.
//
// Permissions: the client's service account needs realm-management's
// manage-realm (organisations, in stock Keycloak 25/26) and manage-users.
//
// InviteURL: Keycloak never returns the emailed (signed action-token) link, so
// the returned InviteURL is Config.InviteURL or, by default, the realm's
// account console {BaseURL}/realms/{Realm}/account, where the invited admin
// signs in (the emailed link, or "Forgot password", sets the password).
type HTTPAdapter struct {
	cfg    Config
	base   string // BaseURL without trailing slash
	client *http.Client

	tokenSem chan struct{} // 1-slot lock around the token cache and fetch
	token    string
	expiry   time.Time
}

var _ Adapter = (*HTTPAdapter)(nil)

// NewHTTPAdapter validates cfg, fills in defaults and returns the adapter.
func NewHTTPAdapter(cfg Config) (*HTTPAdapter, error) {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"BaseURL", cfg.BaseURL}, {"Realm", cfg.Realm},
		{"ClientID", cfg.ClientID}, {"ClientSecret", cfg.ClientSecret},
	} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("keycloak: config: missing %s", strings.Join(missing, ", "))
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("keycloak: config: BaseURL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.EmailRedirectURI != "" && cfg.EmailClientID == "" {
		return nil, errors.New("keycloak: config: EmailRedirectURI requires EmailClientID")
	}
	if cfg.Timeout < 0 || cfg.EmailLifespan < 0 {
		return nil, errors.New("keycloak: config: Timeout and EmailLifespan must not be negative")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EmailLifespan == 0 {
		cfg.EmailLifespan = DefaultEmailLifespan
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if cfg.InviteURL == "" {
		cfg.InviteURL = base + "/realms/" + url.PathEscape(cfg.Realm) + "/account"
	}
	return &HTTPAdapter{cfg: cfg, base: base, client: cfg.HTTPClient, tokenSem: make(chan struct{}, 1)}, nil
}

// Provision implements Adapter.
func (a *HTTPAdapter) Provision(ctx context.Context, req ProvisionRequest) (ProvisionResult, error) {
	if req.Slug == "" || req.Name == "" {
		return ProvisionResult{}, errors.New("keycloak: provision: slug and name are required")
	}
	orgID, err := a.ensureOrg(ctx, req)
	if err != nil {
		return ProvisionResult{}, err
	}
	res := ProvisionResult{OrgID: orgID}
	if req.AdminEmail == "" {
		return res, nil
	}
	// From here on, errors still carry the OrgID so the caller can store it.
	userID, err := a.ensureUser(ctx, req.AdminEmail, req.AdminName)
	if err != nil {
		return res, err
	}
	res.AdminUserID = userID
	if err := a.ensureMember(ctx, orgID, userID); err != nil {
		return res, err
	}
	if err := a.ensureRole(ctx, userID, AdminRole); err != nil {
		return res, err
	}
	if err := a.sendActionsEmail(ctx, userID); err != nil {
		return res, err
	}
	res.InviteURL = a.cfg.InviteURL
	return res, nil
}

type orgRep struct {
	ID         string              `json:"id,omitempty"`
	Name       string              `json:"name"`
	Alias      string              `json:"alias"`
	Enabled    bool                `json:"enabled"`
	Attributes map[string][]string `json:"attributes,omitempty"`
	Domains    []domainRep         `json:"domains,omitempty"`
}

type domainRep struct {
	Name     string `json:"name"`
	Verified bool   `json:"verified"`
}

func (a *HTTPAdapter) orgsPath(elem ...string) string {
	return a.adminPath(append([]string{"organizations"}, elem...)...)
}

func (a *HTTPAdapter) ensureOrg(ctx context.Context, req ProvisionRequest) (string, error) {
	if req.OrgID != "" {
		var org orgRep
		status, err := a.call(ctx, "get organisation", http.MethodGet, a.orgsPath(req.OrgID), nil, &org, http.StatusOK, http.StatusNotFound)
		if err != nil {
			return "", err
		}
		// A stale id (deleted, or somebody else's alias) falls through to
		// create-or-adopt by alias.
		if status == http.StatusOK && org.ID != "" && org.Alias == req.Slug {
			return org.ID, nil
		}
	}
	body := orgRep{
		Name: req.Name, Alias: req.Slug, Enabled: true,
		// Makes the organisation findable by `?q=alias:<slug>` (see findOrgByAlias).
		Attributes: map[string][]string{"alias": {req.Slug}},
	}
	if a.cfg.OrgDomainSuffix != "" {
		body.Domains = []domainRep{{Name: req.Slug + "." + strings.TrimPrefix(a.cfg.OrgDomainSuffix, ".")}}
	}
	resp, err := a.do(ctx, "create organisation", http.MethodPost, a.orgsPath(), body, nil, http.StatusCreated, http.StatusConflict)
	if err != nil {
		return "", err
	}
	if resp.status == http.StatusCreated {
		return idFromLocation("create organisation", resp.location)
	}
	// 409: same alias (adopt it) or same name under another alias (an error).
	id, err := a.findOrgByAlias(ctx, req.Slug)
	if err != nil || id != "" {
		return id, err
	}
	return "", fmt.Errorf("keycloak: create organisation: %w (and no organisation has alias %q)", &APIError{StatusCode: http.StatusConflict, Message: resp.message}, req.Slug)
}

// orgScanPages bounds the fallback scan of findOrgByAlias (pages of 100).
const orgScanPages = 100

// findOrgByAlias returns the id of the organisation whose alias is exactly
// alias, or "" if there is none.
//
// Keycloak's `q=` search matches organisation *attributes*, not the alias
// field, so `?q=alias:<slug>&exact=true` only finds organisations carrying an
// "alias" attribute — which this adapter sets on every organisation it
// creates. An organisation made some other way is found by paging through the
// list and comparing the alias field.
func (a *HTTPAdapter) findOrgByAlias(ctx context.Context, alias string) (string, error) {
	const step = "find organisation by alias"
	match := func(orgs []orgRep) string {
		for _, o := range orgs {
			if o.Alias == alias && o.ID != "" {
				return o.ID
			}
		}
		return ""
	}
	var orgs []orgRep
	q := url.Values{"q": {"alias:" + alias}, "exact": {"true"}}
	if _, err := a.call(ctx, step, http.MethodGet, a.orgsPath()+"?"+q.Encode(), nil, &orgs, http.StatusOK); err != nil {
		return "", err
	}
	if id := match(orgs); id != "" {
		return id, nil
	}
	const pageSize = 100
	for page := range orgScanPages {
		orgs = nil
		q := url.Values{"first": {strconv.Itoa(page * pageSize)}, "max": {strconv.Itoa(pageSize)}}
		if _, err := a.call(ctx, step, http.MethodGet, a.orgsPath()+"?"+q.Encode(), nil, &orgs, http.StatusOK); err != nil {
			return "", err
		}
		if id := match(orgs); id != "" {
			return id, nil
		}
		if len(orgs) < pageSize {
			break
		}
	}
	return "", nil
}

type userRep struct {
	ID              string   `json:"id,omitempty"`
	Username        string   `json:"username"`
	Email           string   `json:"email"`
	FirstName       string   `json:"firstName,omitempty"`
	LastName        string   `json:"lastName,omitempty"`
	Enabled         bool     `json:"enabled"`
	EmailVerified   bool     `json:"emailVerified"`
	RequiredActions []string `json:"requiredActions,omitempty"`
}

var inviteActions = []string{"VERIFY_EMAIL", "UPDATE_PASSWORD"}

func (a *HTTPAdapter) findUser(ctx context.Context, email string) (string, bool, error) {
	var users []userRep
	q := url.Values{"email": {email}, "exact": {"true"}}
	if _, err := a.call(ctx, "find user", http.MethodGet, a.adminPath("users")+"?"+q.Encode(), nil, &users, http.StatusOK); err != nil {
		return "", false, err
	}
	for _, u := range users {
		if strings.EqualFold(u.Email, email) && u.ID != "" {
			return u.ID, true, nil
		}
	}
	return "", false, nil
}

func (a *HTTPAdapter) ensureUser(ctx context.Context, email, name string) (string, error) {
	if id, ok, err := a.findUser(ctx, email); err != nil || ok {
		return id, err
	}
	first, last := splitName(name)
	body := userRep{
		Username: email, Email: email, FirstName: first, LastName: last,
		Enabled: true, RequiredActions: inviteActions,
	}
	resp, err := a.do(ctx, "create user", http.MethodPost, a.adminPath("users"), body, nil, http.StatusCreated, http.StatusConflict)
	if err != nil {
		return "", err
	}
	if resp.status == http.StatusCreated {
		return idFromLocation("create user", resp.location)
	}
	// 409: created concurrently (or by an earlier attempt) — reuse it. A
	// conflict on the username alone (another user's username is this email)
	// is not ours to adopt.
	id, ok, err := a.findUser(ctx, email)
	if err != nil || ok {
		return id, err
	}
	return "", fmt.Errorf("keycloak: create user: %w", &APIError{StatusCode: http.StatusConflict, Message: resp.message})
}

// splitName splits "Ada King Lovelace" into "Ada" and "King Lovelace".
func splitName(name string) (first, last string) {
	f := strings.Fields(name)
	switch len(f) {
	case 0:
		return "", ""
	case 1:
		return f[0], ""
	}
	return f[0], strings.Join(f[1:], " ")
}

func (a *HTTPAdapter) ensureMember(ctx context.Context, orgID, userID string) error {
	// The body is the raw user id, not a JSON string (older versions reject it quoted).
	_, err := a.do(ctx, "add member", http.MethodPost, a.orgsPath(orgID, "members"), rawBody(userID), nil,
		http.StatusCreated, http.StatusNoContent, http.StatusConflict)
	return err
}

type roleRep struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (a *HTTPAdapter) ensureRole(ctx context.Context, userID, role string) error {
	mappings := a.adminPath("users", userID, "role-mappings", "realm")
	var avail []roleRep
	if _, err := a.call(ctx, "list available roles", http.MethodGet, mappings+"/available", nil, &avail, http.StatusOK); err != nil {
		return err
	}
	for _, r := range avail {
		if r.Name == role {
			_, err := a.call(ctx, "assign role "+role, http.MethodPost, mappings, []roleRep{r}, nil, http.StatusNoContent, http.StatusOK)
			return err
		}
	}
	var assigned []roleRep
	if _, err := a.call(ctx, "list assigned roles", http.MethodGet, mappings, nil, &assigned, http.StatusOK); err != nil {
		return err
	}
	for _, r := range assigned {
		if r.Name == role {
			return nil
		}
	}
	return fmt.Errorf("keycloak: assign role %s: realm role %q does not exist (or is not visible to the client)", role, role)
}

func (a *HTTPAdapter) sendActionsEmail(ctx context.Context, userID string) error {
	q := url.Values{"lifespan": {strconv.FormatInt(int64(a.cfg.EmailLifespan/time.Second), 10)}}
	if a.cfg.EmailClientID != "" {
		q.Set("client_id", a.cfg.EmailClientID)
	}
	if a.cfg.EmailRedirectURI != "" {
		q.Set("redirect_uri", a.cfg.EmailRedirectURI)
	}
	p := a.adminPath("users", userID, "execute-actions-email") + "?" + q.Encode()
	_, err := a.call(ctx, "send actions email", http.MethodPut, p, inviteActions, nil, http.StatusNoContent, http.StatusOK)
	return err
}

// ---- HTTP plumbing ----

// adminPath builds /admin/realms/{realm}/elem… with each element escaped.
func (a *HTTPAdapter) adminPath(elem ...string) string {
	p := "/admin/realms/" + url.PathEscape(a.cfg.Realm)
	for _, e := range elem {
		p += "/" + url.PathEscape(e)
	}
	return p
}

// rawBody is sent verbatim (with Content-Type application/json) instead of
// being JSON-encoded.
type rawBody string

type response struct {
	status   int
	location string
	message  string // Keycloak's error text, for accepted non-2xx statuses
}

// call is do returning only the status.
func (a *HTTPAdapter) call(ctx context.Context, step, method, p string, in, out any, accept ...int) (int, error) {
	r, err := a.do(ctx, step, method, p, in, out, accept...)
	return r.status, err
}

// do sends an Admin API request with the bearer token, retrying once with a
// fresh token on 401. Statuses outside accept are errors naming step. out is
// decoded only from a 2xx body.
func (a *HTTPAdapter) do(ctx context.Context, step, method, p string, in, out any, accept ...int) (response, error) {
	var body []byte
	switch v := in.(type) {
	case nil:
	case rawBody:
		body = []byte(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return response{}, fmt.Errorf("keycloak: %s: encode body: %w", step, err)
		}
		body = b
	}
	for attempt := 0; ; attempt++ {
		tok, err := a.accessToken(ctx)
		if err != nil {
			return response{}, fmt.Errorf("keycloak: %s: %w", step, err)
		}
		status, hdr, data, err := a.send(ctx, method, a.base+p, body, in != nil, tok, "")
		if err != nil {
			return response{}, fmt.Errorf("keycloak: %s: %w", step, a.scrub(err, tok))
		}
		if status == http.StatusUnauthorized && attempt == 0 {
			a.dropToken(tok)
			continue
		}
		resp := response{status: status, location: hdr.Get("Location"), message: a.scrubString(errorText(data), tok)}
		for _, s := range accept {
			if s != status {
				continue
			}
			if out != nil && status/100 == 2 && len(bytes.TrimSpace(data)) > 0 {
				if err := json.Unmarshal(data, out); err != nil {
					return resp, fmt.Errorf("keycloak: %s: decode response: %w", step, err)
				}
			}
			return resp, nil
		}
		return resp, fmt.Errorf("keycloak: %s: %w", step, &APIError{StatusCode: status, Message: resp.message})
	}
}

// send performs one request under the per-call timeout and returns the status,
// headers and at most maxBody bytes of the body (the rest is drained).
func (a *HTTPAdapter) send(ctx context.Context, method, u string, body []byte, jsonBody bool, token, contentType string) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case contentType != "":
		req.Header.Set("Content-Type", contentType)
	case jsonBody:
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4*maxBody)) // let the connection be reused
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, resp.Header, data, nil
}

// accessToken returns the cached token, or fetches one when there is none
// (never fetched, or dropped after a 401) or it is about to expire.
// Concurrent callers share one fetch.
func (a *HTTPAdapter) accessToken(ctx context.Context) (string, error) {
	select {
	case a.tokenSem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("fetch token: %w", ctx.Err())
	}
	defer func() { <-a.tokenSem }()
	if a.token != "" && a.cfg.Now().Before(a.expiry) {
		return a.token, nil
	}
	tok, ttl, err := a.fetchToken(ctx)
	if err != nil {
		return "", err
	}
	margin := min(tokenMargin, ttl/2)
	a.token, a.expiry = tok, a.cfg.Now().Add(ttl-margin)
	return tok, nil
}

// dropToken forgets tok if it is still the cached one (another caller may
// already have replaced it).
func (a *HTTPAdapter) dropToken(tok string) {
	a.tokenSem <- struct{}{}
	if a.token == tok {
		a.token = ""
	}
	<-a.tokenSem
}

func (a *HTTPAdapter) fetchToken(ctx context.Context) (string, time.Duration, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {a.cfg.ClientID},
		"client_secret": {a.cfg.ClientSecret},
	}
	u := a.base + "/realms/" + url.PathEscape(a.cfg.Realm) + "/protocol/openid-connect/token"
	status, _, data, err := a.send(ctx, http.MethodPost, u, []byte(form.Encode()), false, "", "application/x-www-form-urlencoded")
	if err != nil {
		return "", 0, fmt.Errorf("fetch token: %w", a.scrub(err, ""))
	}
	if status != http.StatusOK {
		return "", 0, fmt.Errorf("fetch token: %w", &APIError{StatusCode: status, Message: a.scrubString(errorText(data), "")})
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(data, &tr); err != nil || tr.AccessToken == "" {
		return "", 0, errors.New("fetch token: response has no access_token")
	}
	ttl := time.Duration(tr.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = time.Minute // Keycloak always sends expires_in; be conservative if not
	}
	return tr.AccessToken, ttl, nil
}

// errorText extracts Keycloak's error message from a response body.
func errorText(data []byte) string {
	var e struct {
		ErrorMessage     string `json:"errorMessage"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(data, &e) == nil {
		switch {
		case e.ErrorMessage != "":
			return text.Truncate(e.ErrorMessage, 500)
		case e.Error != "" && e.ErrorDescription != "":
			return text.Truncate(e.Error+": "+e.ErrorDescription, 500)
		case e.Error != "":
			return text.Truncate(e.Error, 500)
		}
	}
	return text.Truncate(strings.Join(strings.Fields(string(data)), " "), 200)
}

// scrubString removes the client secret and a token from s (belt and braces:
// neither is ever put into an error on purpose).
func (a *HTTPAdapter) scrubString(s, token string) string {
	s = strings.ReplaceAll(s, a.cfg.ClientSecret, "[redacted]")
	if token != "" {
		s = strings.ReplaceAll(s, token, "[redacted]")
	}
	return s
}

func (a *HTTPAdapter) scrub(err error, token string) error {
	msg := err.Error()
	if clean := a.scrubString(msg, token); clean != msg {
		return errors.New(clean)
	}
	return err
}

func idFromLocation(step, loc string) (string, error) {
	u, err := url.Parse(loc)
	if err == nil {
		if id := path.Base(u.Path); id != "" && id != "." && id != "/" {
			return id, nil
		}
	}
	return "", fmt.Errorf("keycloak: %s: 201 without a usable Location header (%q)", step, loc)
}
