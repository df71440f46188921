// Package keycloaktest provides Fake, an in-memory stand-in for the parts of
// the Keycloak 25/26 Admin REST API that tenant-registry uses, served by an
// httptest.Server. It answers with Keycloak's paths, bodies and status codes:
// 201 + Location and an empty body on create,
// 409 {"errorMessage":…} on a duplicate, 404 {"errorMessage":"Organization not
// found."}, 401 {"error":"HTTP 401 Unauthorized"} without a valid token.
//
// Like the real server, `GET /organizations?q=k:v` matches organisation
// attributes (not the alias field), and `search=` matches name or domain.
package keycloaktest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Org is an organisation held by the Fake.
type Org struct {
	ID         string              `json:"id"`
	Name       string              `json:"name"`
	Alias      string              `json:"alias"`
	Enabled    bool                `json:"enabled"`
	Attributes map[string][]string `json:"attributes,omitempty"`
	Domains    []Domain            `json:"domains,omitempty"`
}

// Domain is an organisation's domain.
type Domain struct {
	Name     string `json:"name"`
	Verified bool   `json:"verified"`
}

// User is a user held by the Fake.
type User struct {
	ID              string   `json:"id"`
	Username        string   `json:"username"`
	Email           string   `json:"email,omitempty"`
	FirstName       string   `json:"firstName,omitempty"`
	LastName        string   `json:"lastName,omitempty"`
	Enabled         bool     `json:"enabled"`
	EmailVerified   bool     `json:"emailVerified"`
	RequiredActions []string `json:"requiredActions"`
}

// clone is a copy of u that shares nothing with it.
func (u *User) clone() User {
	c := *u
	c.RequiredActions = slices.Clone(u.RequiredActions)
	return c
}

// Email records one successful execute-actions-email call.
type Email struct {
	UserID, ClientID, RedirectURI string
	Lifespan                      int // seconds; 0 when not given
	Actions                       []string
}

type role struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Fake is an in-memory Keycloak Admin API. All methods are safe for
// concurrent use.
type Fake struct {
	srv                           *httptest.Server
	realm, clientID, clientSecret string

	mu           sync.Mutex
	orgs         map[string]*Org
	users        map[string]*User
	members      map[string][]string // org id → user ids, in join order
	roles        map[string]role     // name → role
	mappings     map[string][]string // user id → realm role names
	clients      map[string][]string // client id → redirect URIs ("*" suffix = prefix match)
	emails       []Email
	tokens       map[string]bool
	tokensIssued int
	tokenTTL     int
	failEmail    bool
	down         bool
	requireDom   bool
	requests     []string
	hook         func(*http.Request)
}

// New starts a Fake for realm, accepting client credentials clientID /
// clientSecret. The realm has the role IT_ADMIN, and the clients "account"
// and clientID, both allowing any redirect URI. When t is non-nil the server
// is closed at the end of the test.
func New(t testing.TB, realm, clientID, clientSecret string) *Fake {
	f := &Fake{
		realm: realm, clientID: clientID, clientSecret: clientSecret,
		orgs: map[string]*Org{}, users: map[string]*User{}, members: map[string][]string{},
		roles: map[string]role{}, mappings: map[string][]string{},
		clients: map[string][]string{"account": {"*"}, clientID: {"*"}},
		tokens:  map[string]bool{}, tokenTTL: 300,
	}
	f.AddRealmRole("IT_ADMIN")
	f.srv = httptest.NewServer(f.handler())
	if t != nil {
		t.Cleanup(f.Close)
	}
	return f
}

// URL is the server's base URL (what the adapter calls BaseURL).
func (f *Fake) URL() string { return f.srv.URL }

// Client is an *http.Client suited to the server.
func (f *Fake) Client() *http.Client { return f.srv.Client() }

// Close shuts the server down; it is safe to call more than once.
func (f *Fake) Close() { f.srv.Close() }

// ---- knobs ----

// locked runs fn with the Fake's lock held.
func (f *Fake) locked(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// ExpireTokens invalidates every token issued so far: the next Admin API
// call with one of them gets 401.
func (f *Fake) ExpireTokens() { f.locked(func() { clear(f.tokens) }) }

// SetTokenTTL sets expires_in (seconds) of tokens issued from now on (default 300).
func (f *Fake) SetTokenTTL(seconds int) { f.locked(func() { f.tokenTTL = seconds }) }

// FailEmail makes execute-actions-email answer 500 "Failed to send execute
// actions email" (a realm without SMTP) while on.
func (f *Fake) FailEmail(on bool) { f.locked(func() { f.failEmail = on }) }

// SetDown makes every request answer 503 (Keycloak down behind its proxy) while on.
func (f *Fake) SetDown(on bool) { f.locked(func() { f.down = on }) }

// RequireDomain makes organisation create insist on at least one domain, as
// Keycloak before 26.4 does.
func (f *Fake) RequireDomain(on bool) { f.locked(func() { f.requireDom = on }) }

// SetHook installs fn, called at the start of every request (after it is
// logged, before anything else, without the Fake's lock held). fn may block,
// e.g. until r.Context() is done, to simulate a hanging server, or change the
// Fake's state (ExpireTokens) between two calls. nil removes it.
func (f *Fake) SetHook(fn func(r *http.Request)) { f.locked(func() { f.hook = fn }) }

// AddClient registers (or replaces) a client usable as execute-actions-email's
// client_id, with its valid redirect URIs ("https://x/*" allows any URI with
// that prefix, "*" any URI).
func (f *Fake) AddClient(clientID string, redirectURIs ...string) {
	f.locked(func() { f.clients[clientID] = slices.Clone(redirectURIs) })
}

// ---- preloading ----

// AddOrg stores an organisation (enabled, no attributes or domains, as if
// made in the admin console) and returns its id.
func (f *Fake) AddOrg(alias, name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := &Org{ID: newID(), Name: name, Alias: alias, Enabled: true}
	f.orgs[o.ID] = o
	return o.ID
}

// AddUser stores an enabled user with username = email and returns its id.
func (f *Fake) AddUser(email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	email = strings.ToLower(email)
	u := &User{ID: newID(), Username: email, Email: email, Enabled: true, RequiredActions: []string{}}
	f.users[u.ID] = u
	return u.ID
}

// AddRealmRole creates a realm role (or returns the existing one's id).
func (f *Fake) AddRealmRole(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.roles[name]; ok {
		return r.ID
	}
	r := role{ID: newID(), Name: name}
	f.roles[name] = r
	return r.ID
}

// ---- inspectors ----

// Orgs returns copies of all organisations, sorted by alias.
func (f *Fake) Orgs() []Org {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Org, 0, len(f.orgs))
	for _, o := range f.orgs {
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Alias < out[j].Alias })
	return out
}

// Users returns copies of all users, sorted by username.
func (f *Fake) Users() []User {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]User, 0, len(f.users))
	for _, u := range f.users {
		out = append(out, u.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out
}

// Members returns the ids of orgID's members, in join order.
func (f *Fake) Members(orgID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members[orgID])
}

// RoleMappings returns the names of userID's realm roles, in assignment order.
func (f *Fake) RoleMappings(userID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.mappings[userID])
}

// EmailsSent counts successful execute-actions-email calls for userID.
func (f *Fake) EmailsSent(userID string) int { return len(f.Emails(userID)) }

// Emails returns the successful execute-actions-email calls for userID.
func (f *Fake) Emails(userID string) []Email {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Email
	for _, e := range f.emails {
		if e.UserID == userID {
			e.Actions = slices.Clone(e.Actions)
			out = append(out, e)
		}
	}
	return out
}

// TokensIssued counts tokens handed out by the token endpoint.
func (f *Fake) TokensIssued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokensIssued
}

// Requests returns the log of requests received, as "METHOD /path" (no query).
func (f *Fake) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// ---- HTTP ----

func (f *Fake) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/token", f.realmScoped(f.token))
	admin := func(pattern string, h http.HandlerFunc) {
		method, p, _ := strings.Cut(pattern, " ")
		mux.HandleFunc(method+" /admin/realms/{realm}"+p, f.realmScoped(f.authorized(h)))
	}
	admin("GET /organizations", f.listOrgs)
	admin("POST /organizations", f.createOrg)
	admin("GET /organizations/{id}", f.getOrg)
	admin("GET /organizations/{id}/members", f.listMembers)
	admin("POST /organizations/{id}/members", f.addMember)
	admin("GET /users", f.listUsers)
	admin("POST /users", f.createUser)
	admin("GET /users/{id}", f.getUser)
	admin("GET /users/{id}/role-mappings/realm", f.realmRoles)
	admin("GET /users/{id}/role-mappings/realm/available", f.availableRoles)
	admin("POST /users/{id}/role-mappings/realm", f.addRealmRoles)
	admin("PUT /users/{id}/execute-actions-email", f.executeActionsEmail)
	f.organizationRoutes(admin)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Unable to find matching target resource method"})
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.Path)
		hook := f.hook
		f.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		f.mu.Lock()
		down := f.down
		f.mu.Unlock()
		if down {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "no healthy upstream")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (f *Fake) realmScoped(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("realm") != f.realm {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "Realm not found."})
			return
		}
		h(w, r)
	}
}

func (f *Fake) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		valid := ok && f.tokens[tok]
		f.mu.Unlock()
		if !valid {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "HTTP 401 Unauthorized"})
			return
		}
		h(w, r)
	}
}

func (f *Fake) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	invalid := map[string]string{"error_description": "Invalid client or Invalid client credentials"}
	switch {
	case id != f.clientID:
		invalid["error"] = "invalid_client"
		writeJSON(w, http.StatusUnauthorized, invalid)
		return
	case secret != f.clientSecret:
		invalid["error"] = "unauthorized_client"
		writeJSON(w, http.StatusUnauthorized, invalid)
		return
	case r.PostForm.Get("grant_type") != "client_credentials":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"})
		return
	}
	tok := "fake-at-" + newID()
	f.mu.Lock()
	f.tokens[tok] = true
	f.tokensIssued++
	ttl := f.tokenTTL
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "expires_in": ttl, "refresh_expires_in": 0,
		"token_type": "Bearer", "not-before-policy": 0, "scope": "profile email",
	})
}

func (f *Fake) created(w http.ResponseWriter, r *http.Request, id string) {
	w.Header().Set("Location", f.srv.URL+strings.TrimSuffix(r.URL.Path, "/")+"/"+id)
	w.WriteHeader(http.StatusCreated)
}

func (f *Fake) listOrgs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	exact := q.Get("exact") == "true"
	attrs := parseQ(q.Get("q"))
	search := q.Get("search")
	f.mu.Lock()
	var out []Org
	for _, o := range f.orgs {
		if q.Has("q") && !matchAttrs(o.Attributes, attrs) {
			continue
		}
		if !q.Has("q") && search != "" && !matchNameOrDomain(o, search, exact) {
			continue
		}
		out = append(out, *o)
	}
	f.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, page(out, q))
}

// parseQ parses Keycloak's "k1:v1 k2:v2" search query.
func parseQ(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, ":")
		m[k] = v
	}
	return m
}

func matchAttrs(have map[string][]string, want map[string]string) bool {
	for k, v := range want {
		if k != "" && !slices.Contains(have[k], v) {
			return false
		}
	}
	return true
}

func matchNameOrDomain(o *Org, s string, exact bool) bool {
	cands := []string{o.Name}
	for _, d := range o.Domains {
		cands = append(cands, d.Name)
	}
	for _, c := range cands {
		if exact && c == s || !exact && strings.Contains(strings.ToLower(c), strings.ToLower(s)) {
			return true
		}
	}
	return false
}

func page[T any](items []T, q url.Values) []T {
	first, _ := strconv.Atoi(q.Get("first"))
	size, err := strconv.Atoi(q.Get("max"))
	if err != nil || size < 0 {
		size = 100 // Keycloak's default page size for these lists
	}
	if first < 0 || first >= len(items) {
		return []T{}
	}
	return items[first:min(len(items), first+size)]
}

func (f *Fake) createOrg(w http.ResponseWriter, r *http.Request) {
	var in Org
	if !readJSON(w, r, &in) {
		return
	}
	if strings.TrimSpace(in.Name) == "" {
		writeError(w, http.StatusBadRequest, "Name can not be null")
		return
	}
	if in.Alias == "" {
		in.Alias = in.Name
	}
	if strings.ContainsAny(in.Alias, " \t") {
		writeError(w, http.StatusBadRequest, "Alias cannot contain spaces")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.requireDom && len(in.Domains) == 0 {
		writeError(w, http.StatusBadRequest, "You must provide at least one domain")
		return
	}
	for _, o := range f.orgs {
		switch {
		case o.Alias == in.Alias:
			writeError(w, http.StatusConflict, "A organization with the same alias already exists.")
			return
		case o.Name == in.Name:
			writeError(w, http.StatusConflict, "A organization with the same name already exists.")
			return
		}
	}
	o := &Org{ID: newID(), Name: in.Name, Alias: in.Alias, Enabled: in.Enabled, Domains: slices.Clone(in.Domains)}
	if len(in.Attributes) > 0 {
		o.Attributes = map[string][]string{}
		for k, v := range in.Attributes {
			o.Attributes[k] = slices.Clone(v)
		}
	}
	f.orgs[o.ID] = o
	f.created(w, r, o.ID)
}

func (f *Fake) getOrg(w http.ResponseWriter, r *http.Request) {
	c, ok := lookup(f, f.orgs, r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (f *Fake) listMembers(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := f.orgs[id]; !ok {
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	}
	out := []User{}
	for _, uid := range f.members[id] {
		out = append(out, *f.users[uid])
	}
	writeJSON(w, http.StatusOK, page(out, r.URL.Query()))
}

func (f *Fake) addMember(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r) {
		writeError(w, http.StatusUnsupportedMediaType, "Unsupported media type")
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad body")
		return
	}
	// Keycloak takes the raw id; a quoted one is simply not a user id.
	userID := strings.TrimSpace(string(b))
	f.mu.Lock()
	defer f.mu.Unlock()
	orgID := r.PathValue("id")
	if _, ok := f.orgs[orgID]; !ok {
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	}
	if _, ok := f.users[userID]; !ok {
		writeError(w, http.StatusBadRequest, "User does not exist")
		return
	}
	if slices.Contains(f.members[orgID], userID) {
		writeError(w, http.StatusConflict, "User is already a member of the organization.")
		return
	}
	f.members[orgID] = append(f.members[orgID], userID)
	f.created(w, r, userID)
}

func (f *Fake) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	exact := q.Get("exact") == "true"
	match := func(have, want string) bool {
		have, want = strings.ToLower(have), strings.ToLower(want)
		if exact {
			return have == want
		}
		return strings.Contains(have, want)
	}
	f.mu.Lock()
	out := []User{}
	for _, u := range f.users {
		if q.Has("email") && !match(u.Email, q.Get("email")) ||
			q.Has("username") && !match(u.Username, q.Get("username")) {
			continue
		}
		out = append(out, u.clone())
	}
	f.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	writeJSON(w, http.StatusOK, page(out, q))
}

func (f *Fake) createUser(w http.ResponseWriter, r *http.Request) {
	var in User
	if !readJSON(w, r, &in) {
		return
	}
	in.Username, in.Email = strings.ToLower(strings.TrimSpace(in.Username)), strings.ToLower(strings.TrimSpace(in.Email))
	if in.Username == "" {
		writeError(w, http.StatusBadRequest, "User name is missing")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		switch {
		case u.Username == in.Username:
			writeError(w, http.StatusConflict, "User exists with same username")
			return
		case in.Email != "" && u.Email == in.Email:
			writeError(w, http.StatusConflict, "User exists with same email")
			return
		}
	}
	in.ID = newID()
	if in.RequiredActions == nil {
		in.RequiredActions = []string{}
	}
	f.users[in.ID] = &in
	f.created(w, r, in.ID)
}

func (f *Fake) getUser(w http.ResponseWriter, r *http.Request) {
	c, ok := lookup(f, f.users, r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "User not found"})
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// lookup returns a (shallow) copy of m[id], read under f's lock.
func lookup[T any](f *Fake, m map[string]*T, id string) (T, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var c T
	p, ok := m[id]
	if ok {
		c = *p
	}
	return c, ok
}

// userRoles answers with the realm roles for which assigned(name) == want.
func (f *Fake) userRoles(w http.ResponseWriter, r *http.Request, want bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := f.users[id]; !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "User not found"})
		return
	}
	out := []role{}
	for _, rl := range f.roles {
		if slices.Contains(f.mappings[id], rl.Name) == want {
			out = append(out, rl)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) realmRoles(w http.ResponseWriter, r *http.Request) { f.userRoles(w, r, true) }

func (f *Fake) availableRoles(w http.ResponseWriter, r *http.Request) { f.userRoles(w, r, false) }

func (f *Fake) addRealmRoles(w http.ResponseWriter, r *http.Request) {
	var in []role
	if !readJSON(w, r, &in) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := f.users[id]; !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "User not found"})
		return
	}
	for _, want := range in {
		rl, ok := f.roles[want.Name]
		if !ok || rl.ID != want.ID {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "Role not found"})
			return
		}
	}
	for _, want := range in {
		if !slices.Contains(f.mappings[id], want.Name) {
			f.mappings[id] = append(f.mappings[id], want.Name)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

var validActions = []string{"VERIFY_EMAIL", "UPDATE_PASSWORD", "UPDATE_PROFILE", "CONFIGURE_TOTP", "TERMS_AND_CONDITIONS", "webauthn-register"}

func (f *Fake) executeActionsEmail(w http.ResponseWriter, r *http.Request) {
	var actions []string
	if !readJSON(w, r, &actions) {
		return
	}
	q := r.URL.Query()
	clientID, redirect := q.Get("client_id"), q.Get("redirect_uri")
	lifespan := 0
	if s := q.Get("lifespan"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "RESTEASY003870: Unable to extract parameter from http request: lifespan"})
			return
		}
		lifespan = n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[r.PathValue("id")]
	switch {
	case !ok:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "User not found"})
		return
	case u.Email == "":
		writeError(w, http.StatusBadRequest, "User email missing")
		return
	case !u.Enabled:
		writeError(w, http.StatusBadRequest, "User is disabled")
		return
	case redirect != "" && clientID == "":
		writeError(w, http.StatusBadRequest, "Client id missing")
		return
	}
	for _, a := range actions {
		if !slices.Contains(validActions, a) {
			writeError(w, http.StatusBadRequest, "Provided invalid required actions")
			return
		}
	}
	if clientID != "" {
		uris, ok := f.clients[clientID]
		if !ok {
			writeError(w, http.StatusBadRequest, "Client doesn't exist")
			return
		}
		if redirect != "" && !redirectAllowed(uris, redirect) {
			writeError(w, http.StatusBadRequest, "Invalid redirect uri.")
			return
		}
	}
	if f.failEmail {
		writeError(w, http.StatusInternalServerError, "Failed to send execute actions email")
		return
	}
	f.emails = append(f.emails, Email{UserID: u.ID, ClientID: clientID, RedirectURI: redirect, Lifespan: lifespan, Actions: actions})
	w.WriteHeader(http.StatusNoContent)
}

func redirectAllowed(uris []string, redirect string) bool {
	for _, u := range uris {
		if p, ok := strings.CutSuffix(u, "*"); ok && strings.HasPrefix(redirect, p) || u == redirect {
			return true
		}
	}
	return false
}

// ---- helpers ----

func isJSON(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if !isJSON(r) {
		writeError(w, http.StatusUnsupportedMediaType, "Unsupported media type")
		return false
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "Cannot parse the JSON")
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"errorMessage": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
