package server_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	c "github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/project"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

// publisherStack is the service (dev mode, an injected clock) with acme's
// and globex's API keys for the Retraced publisher API.
type publisherStack struct {
	*stack
	clock    *storetest.Clock
	globexID string
	// Plaintext keys: acme's with audit:publish (no project), acme's with
	// a project (projectID), acme's without the scope, globex's.
	acmeKey, acmeKeyID, projectKey, projectID, noScopeKey, globexKey string
}

func newPublisherStack(t *testing.T, st *store.Store) *publisherStack {
	t.Helper()
	clock := storetest.NewClock(time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC))
	s := newStack(t, st, withClock(clock.Now))
	ctx := storetest.SystemContext()
	globex := storetest.Must(s.tenants.Create(ctx, tenant.CreateInput{Slug: "globex", Name: "Globex"}))
	proj := storetest.Must(s.projects.Create(ctx, project.CreateInput{TenantID: acmeID, Slug: "web", Name: "Web"}))
	key := func(tenantID, projectID string, scopes ...string) *apikey.Created {
		return storetest.Must(s.keys.Create(ctx, apikey.CreateInput{TenantID: tenantID, Name: "retraced", Scopes: scopes, ProjectID: projectID}))
	}
	acme := key(acmeID, "", "audit:publish")
	return &publisherStack{
		stack: s, clock: clock, globexID: globex.ID.String(),
		acmeKey: acme.Plaintext, acmeKeyID: acme.Key.ID.String(),
		projectKey: key(acmeID, proj.ID.String(), "audit:publish", "certifai:read").Plaintext, projectID: proj.ID.String(),
		noScopeKey: key(acmeID, "", "audit:read").Plaintext,
		globexKey:  key(globex.ID.String(), "", "audit:publish").Plaintext,
	}
}

func (s *publisherStack) publish(t *testing.T, projectID, authorization, body string) (int, map[string]string) {
	t.Helper()
	res := do(t, s.srv, http.MethodPost, "/publisher/v1/project/"+projectID+"/event", body, map[string]string{"Authorization": authorization})
	var out map[string]string
	if err := json.Unmarshal([]byte(res.body), &out); err != nil {
		t.Fatalf("publish: %d %s: %v", res.status, res.body, err)
	}
	return res.status, out
}

func (s *publisherStack) viewerToken(t *testing.T, projectID, authorization string, q url.Values) (int, map[string]string) {
	t.Helper()
	res := do(t, s.srv, http.MethodGet, "/publisher/v1/project/"+projectID+"/viewertoken?"+q.Encode(), "", map[string]string{"Authorization": authorization})
	var out map[string]string
	if err := json.Unmarshal([]byte(res.body), &out); err != nil {
		t.Fatalf("viewertoken: %d %s: %v", res.status, res.body, err)
	}
	return res.status, out
}

// listEvents calls ListEvents (Connect JSON) with authorization ("" in dev
// mode: the platform admin).
func listEvents(t *testing.T, s *stack, authorization, body string) (int, []*v1.AuditEvent, string) {
	t.Helper()
	res := do(t, s.srv, http.MethodPost, c.AuditServiceListEventsProcedure, body, map[string]string{"Authorization": authorization})
	if res.status != http.StatusOK {
		var e apiError
		_ = json.Unmarshal([]byte(res.body), &e)
		return res.status, nil, e.Code
	}
	var out v1.ListEventsResponse
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(res.body), &out); err != nil {
		t.Fatalf("ListEvents: %s: %v", res.body, err)
	}
	return res.status, out.Events, ""
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestPublishEvent: a Retraced event joins the key's tenant's chain with
// its attributes mapped, and the answer's hash is Retraced's, written here
// by hand from its canonical string.
func TestPublishEvent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		s := newPublisherStack(t, st)
		body := `{"action":"document.signed","crud":"u","group":{"id":"` + strings.ToUpper(acmeID) + `","name":"ignored"},` +
			`"actor":{"id":"u%1","name":"Ada","href":"https://x"},"target":{"id":"t:1","name":"Contract","type":"document"},` +
			`"source_ip":"10.0.0.1","description":"signed it","is_failure":true,"fields":{"k":"a:b%c=d;e","z":""},` +
			`"created":"2026-12-01T10:00:00.000Z","component":"web","version":"abc"}`
		status, got := s.publish(t, acmeID, "Token token="+s.acmeKey, body)
		if status != http.StatusCreated {
			t.Fatalf("publish: %d %v, want 201", status, got)
		}
		id := got["id"]
		if _, err := uuid.Parse(id); err != nil || len(got) != 2 {
			t.Fatalf("answer %v: want {id, hash} with the event's id", got)
		}
		canonical := id + ":document.signed:t%3A1:u%251:" + strings.ToUpper(acmeID) + ":10.0.0.1:1:0:k=a%3Ab%25c%3Dd%3Be;z=;"
		if want := sha256Hex(canonical); got["hash"] != want {
			t.Errorf("hash = %s, want %s (sha256 of %q)", got["hash"], want, canonical)
		}
		// reportEvent's own header form, an event without target or group.
		status, got2 := s.publish(t, acmeID, "token="+s.acmeKey, `{"action":"user.login","crud":"c","actor":{"id":"u2"},"is_anonymous":true}`)
		if want := sha256Hex(got2["id"] + ":user.login::u2:::0:1::"); status != http.StatusCreated || got2["hash"] != want {
			t.Errorf("publish with token=: %d %v, want 201 and hash %s", status, got2, want)
		}

		_, events, _ := listEvents(t, s.stack, "", `{"tenant_id":"`+acmeID+`","page_size":500}`)
		var e *v1.AuditEvent
		for _, ev := range events {
			if ev.Id == id {
				e = ev
			}
		}
		if e == nil {
			t.Fatalf("event %s not in acme's log", id)
		}
		type view struct {
			Action, Crud, Group, ActorID, ActorName, ActorType, TargetID, TargetName, TargetType string
			SourceIP, Description                                                                string
			Failure, Anonymous                                                                   bool
			Fields                                                                               string
			AppendedBy                                                                           string
		}
		gotView := view{e.Action, e.Crud, e.Group.Id, e.Actor.Id, e.Actor.Name, e.Actor.Type, e.Target.Id, e.Target.Name, e.Target.Type,
			e.SourceIp, e.Description, e.IsFailure, e.IsAnonymous, e.Fields["k"] + "|" + e.Fields["z"],
			e.AppendedBy.Type + "/" + e.AppendedBy.Id + "/" + e.AppendedBy.TenantId}
		wantView := view{"document.signed", "u", acmeID, "u%1", "Ada", "user", "t:1", "Contract", "document",
			"10.0.0.1", "signed it", true, false, "a:b%c=d;e|", "service/" + s.acmeKeyID + "/" + acmeID}
		if gotView != wantView {
			t.Errorf("stored event\n got %+v\nwant %+v", gotView, wantView)
		}
		if e.Group.Name == "ignored" {
			t.Errorf("group.name = %q: the registry names the group", e.Group.Name)
		}
		// The chain still verifies.
		res := do(t, s.srv, http.MethodPost, c.AuditServiceVerifyAuditChainProcedure, `{"tenant_id":"`+acmeID+`"}`, nil)
		if res.status != http.StatusOK || !strings.Contains(res.body, `"ok":true`) {
			t.Errorf("VerifyAuditChain: %d %s", res.status, res.body)
		}

		// The header's other spellings: the scheme in any case, the key quoted.
		for _, h := range []string{"token token=" + s.acmeKey, `Token token="` + s.acmeKey + `"`} {
			if status, got := s.publish(t, acmeID, h, `{"action":"a.b","crud":"c","actor":{"id":"u"}}`); status != http.StatusCreated {
				t.Errorf("Authorization %q: %d %v, want 201", h[:13], status, got)
			}
		}
		// A key with a project publishes to its project id.
		if status, got := s.publish(t, s.projectID, "Token token="+s.projectKey, `{"action":"a.b","crud":"c","actor":{"id":"u"}}`); status != http.StatusCreated {
			t.Errorf("project key on its project: %d %v", status, got)
		}
	})
}

// TestPublishRefused: who may publish, and bad bodies; every refusal the
// API's JSON error, never a 5xx.
func TestPublishRefused(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		s := newPublisherStack(t, st)
		ok := `{"action":"a.b","crud":"c","actor":{"id":"u"}}`
		cases := []struct {
			name, project, authorization, body string
			status                             int
			code, msg                          string
		}{
			{"no header", acmeID, "", ok, 401, "unauthenticated", "missing Authorization"},
			{"bearer", acmeID, "Bearer " + s.acmeKey, ok, 401, "unauthenticated", "the Authorization header must be"},
			{"unknown key", acmeID, "Token token=trk_nope", ok, 401, "unauthenticated", "API key not valid"},
			{"no scope", acmeID, "Token token=" + s.noScopeKey, ok, 403, "permission_denied", "lacks the scope audit:publish"},
			{"another tenant's group", acmeID, "Token token=" + s.acmeKey, `{"action":"a.b","crud":"c","actor":{"id":"u"},"group":{"id":"` + s.globexID + `"}}`, 404, "not_found", "group.id: tenant not found"},
			{"a group that is no tenant id", acmeID, "Token token=" + s.acmeKey, `{"action":"a.b","crud":"c","actor":{"id":"u"},"group":{"id":"acme"}}`, 400, "invalid_argument", "group.id:"},
			{"another tenant's project id", acmeID, "Token token=" + s.globexKey, ok, 404, "not_found", "project_id: not this API key's project"},
			{"project key on its tenant id", acmeID, "Token token=" + s.projectKey, ok, 404, "not_found", "project_id:"},
			{"unknown project", uuid.NewString(), "Token token=" + s.acmeKey, ok, 404, "not_found", "project_id:"},
			{"not JSON", acmeID, "Token token=" + s.acmeKey, `{`, 400, "invalid_argument", "request body: not valid JSON"},
			{"bad action", acmeID, "Token token=" + s.acmeKey, `{"action":"Login","crud":"c","actor":{"id":"u"}}`, 400, "invalid_argument", "action:"},
			{"no crud", acmeID, "Token token=" + s.acmeKey, `{"action":"a.b","actor":{"id":"u"}}`, 400, "invalid_argument", "crud:"},
			{"no actor", acmeID, "Token token=" + s.acmeKey, `{"action":"a.b","crud":"c","is_anonymous":true}`, 400, "invalid_argument", "actor.id:"},
			{"field key", acmeID, "Token token=" + s.acmeKey, `{"action":"a.b","crud":"c","actor":{"id":"u"},"fields":{"a:b":"c"}}`, 400, "invalid_argument", "fields:"},
			{"source ip", acmeID, "Token token=" + s.acmeKey, `{"action":"a.b","crud":"c","actor":{"id":"u"},"source_ip":"nope"}`, 400, "invalid_argument", "source_ip:"},
			{"long actor", acmeID, "Token token=" + s.acmeKey, `{"action":"a.b","crud":"c","actor":{"id":"` + strings.Repeat("x", 256) + `"}}`, 400, "invalid_argument", "actor.id:"},
			{"metadata", acmeID, "Token token=" + s.acmeKey, `{"action":"a.b","crud":"c","actor":{"id":"u"},"metadata":{"a":"b"}}`, 400, "invalid_argument", "metadata:"},
		}
		for _, tc := range cases {
			status, got := s.publish(t, tc.project, tc.authorization, tc.body)
			if status != tc.status || got["code"] != tc.code || !strings.Contains(got["message"], tc.msg) {
				t.Errorf("%s: %d %v, want %d %s %q", tc.name, status, got, tc.status, tc.code, tc.msg)
			}
		}
		// Only JSON; only POST.
		res := do(t, s.srv, http.MethodPost, "/publisher/v1/project/"+acmeID+"/event", ok, map[string]string{"Authorization": "Token token=" + s.acmeKey, "Content-Type": "text/plain"})
		if res.status != http.StatusUnsupportedMediaType {
			t.Errorf("text/plain: %d %s, want 415", res.status, res.body)
		}
		res = do(t, s.srv, http.MethodPut, "/publisher/v1/project/"+acmeID+"/event", ok, nil)
		if res.status != http.StatusMethodNotAllowed || res.header.Get("Allow") != "POST" {
			t.Errorf("PUT: %d Allow %q, want 405 Allow POST", res.status, res.header.Get("Allow"))
		}
		res = do(t, s.srv, http.MethodPost, "/publisher/v1/project/"+acmeID+"/event", `{"action":"a.b","description":"`+strings.Repeat("x", 2<<20)+`"}`,
			map[string]string{"Authorization": "Token token=" + s.acmeKey})
		if res.status != http.StatusRequestEntityTooLarge {
			t.Errorf("a 2 MiB body: %d, want 413", res.status)
		}
		// Nothing refused reached the log.
		_, events, _ := listEvents(t, s.stack, "", `{"tenant_id":"`+acmeID+`","actor_id":"u","page_size":500}`)
		if len(events) != 0 {
			t.Errorf("refused events were stored: %v", events)
		}
	})
}

// TestViewerToken: a viewer token reads its group's events (ListEvents,
// ExportEvents, the NDJSON export), each read appending audit.log.view as
// its actor, and nothing else; expired or tampered tokens are refused.
func TestViewerToken(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		s := newPublisherStack(t, st)
		for _, key := range []string{s.acmeKey, s.globexKey} {
			project := acmeID
			if key == s.globexKey {
				project = s.globexID
			}
			if status, got := s.publish(t, project, "Token token="+key, `{"action":"doc.read","crud":"r","actor":{"id":"reader"}}`); status != http.StatusCreated {
				t.Fatalf("publish: %d %v", status, got)
			}
		}
		q := url.Values{"group_id": {acmeID}, "actor_id": {"viewer-1"}, "is_admin": {"true"}}
		status, got := s.viewerToken(t, acmeID, "Token token="+s.acmeKey, q)
		if status != http.StatusCreated || !strings.HasPrefix(got["token"], "rtv1.") {
			t.Fatalf("viewertoken: %d %v", status, got)
		}
		bearer := "Bearer " + got["token"]

		status, events, code := listEvents(t, s.stack, bearer, `{}`)
		if status != http.StatusOK {
			t.Fatalf("ListEvents with the viewer token: %d %s", status, code)
		}
		views := 0
		for _, e := range events {
			if e.Group.Id != acmeID {
				t.Errorf("the viewer token listed %s's event %s", e.Group.Id, e.Id)
			}
			if e.Action == "audit.log.view" && e.Actor.Id == "viewer-1" && e.Fields["procedure"] == "ListEvents" {
				views++
			}
		}
		if views != 0 {
			t.Errorf("the first page already holds %d views (recorded after the read)", views)
		}
		// Its own tenant named explicitly, in any spelling, is fine;
		// globex's is not found; other RPCs are refused.
		if status, _, code := listEvents(t, s.stack, bearer, `{"tenant_id":"`+strings.ToUpper(acmeID)+`"}`); status != http.StatusOK {
			t.Errorf("ListEvents of acme in upper case: %d %s", status, code)
		}
		if status, _, code := listEvents(t, s.stack, bearer, `{"tenant_id":"`+s.globexID+`"}`); status != http.StatusNotFound || code != "not_found" {
			t.Errorf("ListEvents of globex with acme's viewer token: %d %s, want 404 not_found", status, code)
		}
		for _, proc := range []string{c.AuditServiceAppendEventProcedure, c.AuditServiceVerifyAuditChainProcedure,
			c.TenantServiceGetTenantProcedure, c.ApiKeyServiceListApiKeysProcedure, c.AuditServiceListDigestsProcedure} {
			res := do(t, s.srv, http.MethodPost, proc, `{"tenant_id":"`+acmeID+`","id":"`+acmeID+`"}`, map[string]string{"Authorization": bearer})
			if res.status != http.StatusForbidden {
				t.Errorf("%s with a viewer token: %d %s, want 403", proc, res.status, res.body)
			}
		}
		// The NDJSON export and the streaming RPC.
		res := do(t, s.srv, http.MethodGet, "/v1/audit/export", "", map[string]string{"Authorization": bearer})
		if res.status != http.StatusOK {
			t.Fatalf("export with the viewer token: %d %s", res.status, res.body)
		}
		sc := bufio.NewScanner(strings.NewReader(res.body))
		for sc.Scan() {
			var ev struct{ Group struct{ ID string } }
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Group.ID != acmeID {
				t.Errorf("export line %s: want acme's events only", sc.Text())
			}
		}
		if res := do(t, s.srv, http.MethodGet, "/v1/audit/export?tenant_id="+s.globexID, "", map[string]string{"Authorization": bearer}); res.status != http.StatusNotFound {
			t.Errorf("export of globex with acme's viewer token: %d, want 404", res.status)
		}
		client := c.NewAuditServiceClient(s.srv.Client(), s.srv.URL)
		req := connect.NewRequest(&v1.ExportEventsRequest{})
		req.Header().Set("Authorization", bearer)
		stream, err := client.ExportEvents(storetest.SystemContext(), req)
		if err != nil {
			t.Fatal(err)
		}
		for stream.Receive() {
			if g := stream.Msg().Event.Group.Id; g != acmeID {
				t.Errorf("ExportEvents streamed %s's event", g)
			}
		}
		if err := stream.Err(); err != nil {
			t.Errorf("ExportEvents: %v", err)
		}
		// Each of the four reads (two lists, the NDJSON export, the
		// stream) appended its view to acme's chain, none to globex's.
		_, events, _ = listEvents(t, s.stack, "", `{"tenant_id":"`+acmeID+`","action":"audit.log.view","page_size":100}`)
		byProc := map[string]int{}
		for _, e := range events {
			if e.Actor.Id != "viewer-1" || e.Crud != "r" || e.Fields["api_key_id"] != s.acmeKeyID {
				t.Errorf("view event %+v: want actor viewer-1, crud r, the issuing key", e)
			}
			byProc[e.Fields["procedure"]]++
		}
		if byProc["ListEvents"] != 2 || byProc["ExportEvents"] != 2 || len(events) != 4 {
			t.Errorf("views by procedure %v (%d events), want ListEvents 2, ExportEvents 2", byProc, len(events))
		}
		if _, events, _ = listEvents(t, s.stack, "", `{"tenant_id":"`+s.globexID+`","action":"audit.log.view"}`); len(events) != 0 {
			t.Errorf("globex's chain got %d views", len(events))
		}

		// Tampered and expired tokens.
		tok := got["token"]
		flip := byte('A')
		if tok[10] == 'A' {
			flip = 'B'
		}
		tampered := tok[:10] + string(flip) + tok[11:]
		if status, _, code := listEvents(t, s.stack, "Bearer "+tampered, `{}`); status != http.StatusUnauthorized {
			t.Errorf("tampered token: %d %s, want 401", status, code)
		}
		s.clock.Advance(5*time.Minute + time.Second)
		if status, _, code := listEvents(t, s.stack, bearer, `{}`); status != http.StatusUnauthorized || code != "unauthenticated" {
			t.Errorf("expired token: %d %s, want 401 unauthenticated", status, code)
		}
	})
}

// TestViewerTokenRefused: who may have a viewer token, for which group.
func TestViewerTokenRefused(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		s := newPublisherStack(t, st)
		good := url.Values{"group_id": {acmeID}, "actor_id": {"v"}}
		with := func(k, v string) url.Values {
			q := url.Values{"group_id": {acmeID}, "actor_id": {"v"}}
			q.Set(k, v)
			return q
		}
		cases := []struct {
			name, project, authorization string
			q                            url.Values
			status                       int
			code                         string
		}{
			{"no scope", acmeID, "Token token=" + s.noScopeKey, good, 403, "permission_denied"},
			{"no key", acmeID, "", good, 401, "unauthenticated"},
			{"another tenant's group", acmeID, "Token token=" + s.acmeKey, with("group_id", s.globexID), 404, "not_found"},
			{"another tenant's key", s.globexID, "Token token=" + s.globexKey, good, 404, "not_found"},
			{"no group", acmeID, "Token token=" + s.acmeKey, with("group_id", ""), 400, "invalid_argument"},
			{"no actor", acmeID, "Token token=" + s.acmeKey, with("actor_id", ""), 400, "invalid_argument"},
			{"target", acmeID, "Token token=" + s.acmeKey, with("target_id", "t"), 400, "invalid_argument"},
			{"bad view action", acmeID, "Token token=" + s.acmeKey, with("view_log_action", "VIEW"), 400, "invalid_argument"},
		}
		for _, tc := range cases {
			status, got := s.viewerToken(t, tc.project, tc.authorization, tc.q)
			if status != tc.status || got["code"] != tc.code {
				t.Errorf("%s: %d %v, want %d %s", tc.name, status, got, tc.status, tc.code)
			}
		}
		// team_id is group_id's old name; view_log_action names the action.
		q := url.Values{"team_id": {acmeID}, "actor_id": {"v"}, "view_log_action": {"audit.viewer.opened"}}
		status, got := s.viewerToken(t, acmeID, "Token token="+s.acmeKey, q)
		if status != http.StatusCreated {
			t.Fatalf("team_id: %d %v", status, got)
		}
		if status, _, code := listEvents(t, s.stack, "Bearer "+got["token"], `{}`); status != http.StatusOK {
			t.Fatalf("ListEvents: %d %s", status, code)
		}
		if _, events, _ := listEvents(t, s.stack, "", `{"tenant_id":"`+acmeID+`","action":"audit.viewer.opened"}`); len(events) != 1 {
			t.Errorf("%d audit.viewer.opened events, want 1", len(events))
		}
	})
}
