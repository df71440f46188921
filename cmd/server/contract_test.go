package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The committed OpenAPI document (gen/openapi/openapi.yaml, made by `make
// generate` from the protos) against the real server: every documented
// operation gets a real success and a real error request, and the request,
// the status and the body are validated against the document. The README's
// API table (the REST contract) and the document list the same operations.

const specPath = "../../gen/openapi/openapi.yaml"

// notInSpec are paths served outside the REST transcoder, so outside the
// generated document, on purpose:
//   - /healthz, /readyz: plain HTTP probes, not RPCs (TestServe covers them);
//   - /v1/audit/export: ExportEvents is a server stream with no
//     google.api.http rule; its REST form is a plain NDJSON handler
//     (routes.go), which an OpenAPI operation cannot usefully describe;
//   - /v1/tenants/{id}/export: ExportTenant, the same way;
//   - /publisher/v1/…: the Retraced publisher API, Retraced's contract (its
//     clients') served by plain handlers, not RPCs of the protos
//     (internal/server's publisher tests cover them).
var notInSpec = map[string]bool{
	"GET /healthz":                true,
	"GET /readyz":                 true,
	"GET /v1/audit/export":        true,
	"GET /v1/tenants/{id}/export": true,
	"POST /publisher/v1/project/{project_id}/event":      true,
	"GET /publisher/v1/project/{project_id}/viewertoken": true,
}

func loadSpec(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(specPath)
	if err != nil {
		t.Fatalf("load %s: %v", specPath, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", specPath, err)
	}
	// Strict for the test: a message schema allows no other properties, so a
	// response of another shape (say {"tenant":{…}} where the bare tenant is
	// documented) fails here. The published document stays open to additions.
	no := false
	for _, ref := range doc.Components.Schemas {
		if s := ref.Value; s != nil && s.Type.Is("object") && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			s.AdditionalProperties.Has = &no
		}
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// TestDesignPathsInSpec: the README's API table is the REST contract. Every
// row (method and path) is an operation of the committed document, with the
// RPC the row names, or explicitly notInSpec; and every operation of the
// document is a row of the table.
func TestDesignPathsInSpec(t *testing.T) {
	doc, _ := loadSpec(t)
	rows, err := readmeAPITable(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 15 {
		t.Fatalf("found only %d rows in %s's API table: has its format changed? %v", len(rows), readmePath, rows)
	}
	inTable := map[string]bool{}
	for _, row := range rows {
		op := row.method + " " + row.path
		if inTable[op] {
			t.Errorf("%s: %s is in the API table twice", readmePath, op)
		}
		inTable[op] = true
		if notInSpec[op] {
			continue
		}
		item := doc.Paths.Find(row.path)
		if item == nil || item.GetOperation(row.method) == nil {
			t.Errorf("%s's %s is not in %s", readmePath, op, specPath)
			continue
		}
		// gnostic's operationId is Service_Method; the table names
		// Service/Method.
		if got, want := row.rpc, strings.Replace(item.GetOperation(row.method).OperationID, "_", "/", 1); got != want {
			t.Errorf("%s's %s names the RPC %q, the document %q", readmePath, op, got, want)
		}
	}
	for op := range notInSpec {
		if !inTable[op] {
			t.Errorf("notInSpec's %s is not in %s's API table", op, readmePath)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if op := method + " " + path; !inTable[op] {
				t.Errorf("%s's %s is not in %s's API table", specPath, op, readmePath)
			}
		}
	}
}

const readmePath = "../../README.md"

// apiRow is one row of the README's API table.
type apiRow struct {
	method, path string
	rpc          string // the first word of the RPC column, e.g. "TenantService/GetTenant"
}

// apiTableRow matches a row: | METHOD | `/path` | RPC … | who |.
var apiTableRow = regexp.MustCompile("^\\|\\s*(GET|POST|PUT|PATCH|DELETE)\\s*\\|\\s*`([^`]+)`\\s*\\|\\s*([^|\\s]*)")

// readmeAPITable returns the rows of the table in the README's "## API"
// section, each path without its query string.
func readmeAPITable(path string) ([]apiRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []apiRow
	inAPI := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			inAPI = line == "## API"
			continue
		}
		if !inAPI {
			continue
		}
		if m := apiTableRow.FindStringSubmatch(line); m != nil {
			p, _, _ := strings.Cut(m[2], "?")
			rows = append(rows, apiRow{method: m[1], path: p, rpc: m[3]})
		}
	}
	return rows, sc.Err()
}

// contract sends requests and validates them and their responses against
// the document, recording which operations had a success and an error case.
type contract struct {
	t       *testing.T
	base    string
	router  routers.Router
	success map[string]bool // "METHOD /template"
	failure map[string]bool
}

// call sends method path with body (JSON, or none when empty), expects
// status, validates everything against the document and returns the decoded
// body. A request the document itself rejects is a test failure, unless
// specRejects: then the server must answer 400 and the document must reject
// the request too (they agree on what is malformed).
func (c *contract) call(method, path, body string, status int, specRejects bool) map[string]any {
	t := c.t
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	// Route on a copy without the host, as the document has no servers.
	route, params, err := c.router.FindRoute(mustRequest(t, method, path, body))
	if err != nil {
		t.Errorf("%s %s: not in the document: %v", method, path, err)
		return nil
	}
	op := method + " " + route.Path
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    mustRequest(t, method, path, body),
		PathParams: params,
		Route:      route,
		Options:    opts,
	}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case specRejects && reqErr == nil:
		t.Errorf("%s %s %s: the document accepts this request, the test expects it not to", method, path, body)
	case !specRejects && reqErr != nil:
		t.Errorf("%s %s %s: request does not validate: %v", method, path, body, reqErr)
	}

	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != status {
		t.Errorf("%s %s %s: status %d, want %d: %s", method, path, body, res.StatusCode, status, raw)
	}
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Body:                   io.NopCloser(bytes.NewReader(raw)),
		Options:                opts,
	}); err != nil {
		t.Errorf("%s %s: %d response does not validate: %v\n%s", method, path, res.StatusCode, err, raw)
	}
	if res.StatusCode < 300 {
		c.success[op] = true
	} else {
		c.failure[op] = true
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Errorf("%s %s: not a JSON object: %q", method, path, raw)
	}
	return m
}

func mustRequest(t *testing.T, method, path, body string) *http.Request {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func jsonStr(t *testing.T, m map[string]any, keys ...string) string {
	t.Helper()
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: no %s", m, strings.Join(keys, "."))
		}
		v = mm[k]
	}
	s, ok := v.(string)
	if !ok || s == "" {
		t.Fatalf("%v: no %s", m, strings.Join(keys, "."))
	}
	return s
}

// TestContract runs on the embedded SQLite store after the dev seed (acme),
// as a platform admin (APP_ENV=dev without a token).
func TestContract(t *testing.T) {
	doc, router := loadSpec(t)
	base := startServer(t, map[string]string{"APP_ENV": "dev"})
	c := &contract{t: t, base: base, router: router, success: map[string]bool{}, failure: map[string]bool{}}
	const (
		acme    = "00000000-0000-0000-0000-000000000001"
		unknown = "00000000-0000-0000-0000-0000000000ff"
		OK      = http.StatusOK
		bad     = http.StatusBadRequest
		missing = http.StatusNotFound
		clash   = http.StatusConflict
	)

	// Tenants.
	created := c.call("POST", "/v1/tenants", `{"slug":"contract-co","name":"Contract Co","plan":"starter"}`, OK, false)
	id := jsonStr(t, created, "tenant", "id")
	c.call("POST", "/v1/tenants", `{"slug":"Not A Slug","name":"x","plan":"starter"}`, bad, false)
	c.call("POST", "/v1/tenants", `{"slug":"contract-co","name":"Again","plan":"starter"}`, clash, false)
	c.call("POST", "/v1/tenants", `{"slug":`, bad, true)
	c.call("GET", "/v1/tenants", "", OK, false)
	c.call("GET", "/v1/tenants?page_size=-1", "", bad, false)
	if got := c.call("GET", "/v1/tenants/"+acme, "", OK, false); got["slug"] != "acme" {
		t.Errorf("GET /v1/tenants/{id} is not the bare tenant: %v", got)
	}
	c.call("GET", "/v1/tenants/"+unknown, "", missing, false)
	if got := c.call("GET", "/v1/tenants/by-slug/acme", "", OK, false); got["id"] != acme {
		t.Errorf("GET /v1/tenants/by-slug/{slug} is not the bare tenant: %v", got)
	}
	c.call("GET", "/v1/tenants/by-slug/no-such-tenant", "", missing, false)
	c.call("POST", "/v1/tenants/"+id+"/retry-provisioning", `{}`, OK, false)
	c.call("POST", "/v1/tenants/"+unknown+"/retry-provisioning", `{}`, missing, false)

	// Catalog and entitlements (the new tenant is in trial).
	c.call("GET", "/v1/catalog", "", OK, false)
	c.call("GET", "/v1/catalog?tenant_id="+unknown, "", missing, false)
	c.call("POST", "/v1/catalog/trial-request", `{"tenant_id":"`+id+`","product":"certifai"}`, OK, false)
	c.call("POST", "/v1/catalog/trial-request", `{"tenant_id":"`+id+`","product":"certifai"}`, clash, false)
	c.call("POST", "/v1/catalog/request", `{"tenant_id":"`+id+`","product":"compliance","note":"please"}`, OK, false)
	c.call("POST", "/v1/catalog/request", `{"tenant_id":"`+unknown+`","product":"compliance"}`, missing, false)
	c.call("GET", "/v1/entitlements?tenant_id="+id, "", OK, false)
	c.call("GET", "/v1/entitlements?tenant_id="+unknown, "", missing, false)
	c.call("POST", "/v1/entitlements/grant", `{"tenant_id":"`+id+`","product":"compliance"}`, OK, false)
	c.call("POST", "/v1/entitlements/grant", `{"tenant_id":"`+unknown+`","product":"compliance"}`, missing, false)
	c.call("POST", "/v1/entitlements/revoke", `{"tenant_id":"`+id+`","product":"compliance"}`, OK, false)
	c.call("POST", "/v1/entitlements/revoke", `{"tenant_id":"`+unknown+`","product":"compliance"}`, missing, false)

	// Lifecycle: trial → active → frozen; repeating either is a conflict.
	c.call("POST", "/v1/tenants/"+id+"/activate", `{}`, OK, false)
	c.call("POST", "/v1/tenants/"+id+"/activate", `{}`, clash, false)
	c.call("POST", "/v1/tenants/"+acme+"/cancel", `{}`, OK, false)
	c.call("POST", "/v1/tenants/"+acme+"/cancel", `{}`, clash, false)
	c.call("POST", "/v1/tenants/"+acme+"/activate", `{}`, OK, false)

	// API keys.
	key := c.call("POST", "/v1/api-keys", `{"tenant_id":"`+acme+`","name":"ci","scopes":["read"]}`, OK, false)
	keyID := jsonStr(t, key, "api_key", "id")
	plaintext := jsonStr(t, key, "key")
	c.call("POST", "/v1/api-keys", `{"tenant_id":"`+unknown+`","name":"ci"}`, missing, false)
	c.call("GET", "/v1/api-keys?tenant_id="+acme, "", OK, false)
	c.call("GET", "/v1/api-keys?tenant_id="+acme+"&cursor=bm90LWEtY3Vyc29y", "", bad, false)
	c.call("POST", "/v1/internal/api-keys/verify", `{"key":"`+plaintext+`"}`, OK, false)
	c.call("POST", "/v1/internal/api-keys/verify", `{"key":42}`, bad, true)
	rotated := c.call("POST", "/v1/api-keys/"+keyID+"/rotate", `{"overlap_seconds":0}`, OK, false)
	newKeyID := jsonStr(t, rotated, "api_key", "id")
	c.call("POST", "/v1/api-keys/"+unknown+"/rotate", `{}`, missing, false)
	c.call("DELETE", "/v1/api-keys/"+newKeyID, "", OK, false)
	c.call("DELETE", "/v1/api-keys/"+unknown, "", missing, false)

	// Changing a tenant; offboarding a frozen one and restoring it.
	c.call("PATCH", "/v1/tenants/"+id, `{"name":"Contract Company","plan":"professional"}`, OK, false)
	c.call("PATCH", "/v1/tenants/"+id, `{}`, bad, false)
	c.call("DELETE", "/v1/tenants/"+id, "", clash, false) // active: not deletable
	c.call("POST", "/v1/tenants/"+id+"/restore", `{}`, clash, false)
	c.call("POST", "/v1/tenants/"+id+"/cancel", `{}`, OK, false)
	if got := c.call("DELETE", "/v1/tenants/"+id, "", OK, false); got["tenant"] == nil {
		t.Errorf("DELETE /v1/tenants/{id} answers no tenant: %v", got)
	}
	c.call("POST", "/v1/tenants/"+id+"/restore", `{}`, OK, false)

	// Projects (acme's).
	projects := "/v1/tenants/" + acme + "/projects"
	proj := c.call("POST", projects, `{"slug":"contract","name":"Contract"}`, OK, false)
	projID := jsonStr(t, proj, "project", "id")
	c.call("POST", projects, `{"slug":"contract","name":"Again"}`, clash, false)
	c.call("GET", projects+"?page_size=10", "", OK, false)
	c.call("GET", "/v1/tenants/"+unknown+"/projects", "", missing, false)
	c.call("GET", projects+"/"+projID, "", OK, false)
	c.call("GET", projects+"/"+unknown, "", missing, false)
	c.call("PATCH", projects+"/"+projID, `{"name":"Contract 2"}`, OK, false)
	c.call("PATCH", projects+"/"+projID, `{"slug":"Not A Slug"}`, bad, false)
	c.call("POST", "/v1/api-keys", `{"tenant_id":"`+acme+`","name":"proj","project_id":"`+projID+`"}`, OK, false)
	c.call("DELETE", projects+"/"+projID, "", OK, false)
	c.call("DELETE", projects+"/"+projID, "", missing, false)

	// Claims.
	c.call("POST", "/v1/internal/keycloak/claims", `{"slug":"acme"}`, OK, false)
	c.call("POST", "/v1/internal/keycloak/claims", `{"slug":"no-such-tenant"}`, missing, false)

	// Audit.
	c.call("POST", "/v1/audit", `{"tenant_id":"`+acme+`","action":"contract.tested","crud":"c","actor":{"id":"ci","name":"CI","type":"service"},"fields":{"k":"v"}}`, OK, false)
	c.call("POST", "/v1/audit", `{"tenant_id":"`+acme+`","crud":"c"}`, bad, false)
	c.call("GET", "/v1/audit?tenant_id="+acme+"&page_size=1", "", OK, false)
	c.call("GET", "/v1/audit?tenant_id="+acme+"&cursor=bm90LWEtY3Vyc29y", "", bad, false)
	c.call("POST", "/v1/audit/verify", `{"tenant_id":"`+acme+`"}`, OK, false)
	c.call("POST", "/v1/audit/verify", `{"tenant_id":"not-a-uuid"}`, bad, false)
	c.call("POST", "/v1/audit/digests", `{"tenant_id":"`+acme+`"}`, OK, false)
	c.call("POST", "/v1/audit/digests", `{"tenant_id":"`+unknown+`"}`, missing, false)
	c.call("GET", "/v1/audit/digests?tenant_id="+acme, "", OK, false)
	c.call("GET", "/v1/audit/digests?tenant_id="+acme+"&cursor=nope", "", bad, false)
	c.call("GET", "/v1/audit/public-keys", "", OK, false)
	c.call("GET", "/v1/audit/public-keys?page_size=-1", "", bad, false)

	// Single sign-on and invitations (the dev mock Keycloak).
	idp := c.call("PUT", "/v1/tenants/"+acme+"/idp", `{"protocol":"oidc","oidc":{"issuer":"https://login.acme.example","client_id":"registry","client_secret":"contract-idp-secret"},"domains":["acme.example"]}`, OK, false)
	if idp["has_client_secret"] != true || idp["tenant_id"] != acme || strings.Contains(fmt.Sprint(idp), "contract-idp-secret") {
		t.Errorf("PUT /v1/tenants/{tenant_id}/idp is not the bare configuration without the secret: %v", idp)
	}
	c.call("PUT", "/v1/tenants/"+acme+"/idp", `{"protocol":"ldap","domains":["acme.example"]}`, bad, false)
	c.call("PUT", "/v1/tenants/"+id+"/idp", `{"protocol":"saml","saml":{"metadata_url":"https://idp.acme.example/md"},"domains":["ACME.example"]}`, clash, false)
	if got := c.call("GET", "/v1/tenants/"+acme+"/idp", "", OK, false); got["protocol"] != "oidc" {
		t.Errorf("GET /v1/tenants/{tenant_id}/idp: %v", got)
	}
	c.call("GET", "/v1/tenants/"+unknown+"/idp", "", missing, false)
	c.call("DELETE", "/v1/tenants/"+acme+"/idp", "", OK, false)
	c.call("DELETE", "/v1/tenants/"+acme+"/idp", "", missing, false)
	invite := c.call("POST", "/v1/tenants/"+acme+"/invitations", `{"email":"new@acme.example","name":"New Person","role":"IT_ADMIN"}`, OK, false)
	if invite["email"] != "new@acme.example" || invite["role"] != "IT_ADMIN" {
		t.Errorf("POST /v1/tenants/{tenant_id}/invitations: %v", invite)
	}
	c.call("POST", "/v1/tenants/"+acme+"/invitations", `{"email":"not-an-address"}`, bad, false)

	// Webhooks (dev: WEBHOOK_ALLOW_PRIVATE; nothing listens on the port).
	ep := c.call("POST", "/v1/webhooks", `{"url":"http://127.0.0.1:9/hooks","event_types":["tenant.created"],"description":"contract"}`, OK, false)
	epID := jsonStr(t, ep, "endpoint", "id")
	if !strings.HasPrefix(jsonStr(t, ep, "secret"), "whsec_") {
		t.Errorf("CreateEndpoint's secret: %v", ep["secret"])
	}
	c.call("POST", "/v1/webhooks", `{"url":"ftp://hooks.example.com/"}`, bad, false)
	c.call("GET", "/v1/webhooks", "", OK, false)
	c.call("GET", "/v1/webhooks?cursor=bm90LWEtY3Vyc29y", "", bad, false)
	if got := c.call("GET", "/v1/webhooks/"+epID, "", OK, false); got["endpoint"] == nil || got["secret"] != nil {
		t.Errorf("GetEndpoint: %v", got)
	}
	c.call("GET", "/v1/webhooks/"+unknown, "", missing, false)
	c.call("POST", "/v1/webhooks/"+epID+"/rotate-secret", `{}`, OK, false)
	c.call("POST", "/v1/webhooks/"+unknown+"/rotate-secret", `{}`, missing, false)
	c.call("POST", "/v1/tenants", `{"slug":"contract-hooked","name":"Hooked","plan":"starter"}`, OK, false)
	deliveries := c.call("GET", "/v1/webhooks/"+epID+"/deliveries", "", OK, false)
	list, _ := deliveries["deliveries"].([]any)
	if len(list) != 1 {
		t.Fatalf("ListDeliveries after one tenant.created: %v", deliveries)
	}
	deliveryID := jsonStr(t, list[0].(map[string]any), "id")
	c.call("GET", "/v1/webhooks/"+unknown+"/deliveries", "", missing, false)
	c.call("POST", "/v1/webhooks/"+epID+"/deliveries/"+deliveryID+"/retry", `{}`, OK, false)
	c.call("POST", "/v1/webhooks/"+epID+"/deliveries/"+unknown+"/retry", `{}`, missing, false)
	c.call("DELETE", "/v1/webhooks/"+epID, "", OK, false)
	c.call("DELETE", "/v1/webhooks/"+epID, "", missing, false)

	// Every documented operation had both.
	var ops []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	sort.Strings(ops)
	for _, op := range ops {
		if !c.success[op] {
			t.Errorf("%s: no success case in the contract test", op)
		}
		if !c.failure[op] {
			t.Errorf("%s: no error case in the contract test", op)
		}
	}
	t.Logf("%d operations, each with a success and an error case", len(ops))
}
