package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

// clientStep is one line web/retraced-client/publish.mjs prints.
type clientStep struct {
	Step  string `json:"step"`
	OK    bool   `json:"ok"`
	ID    string `json:"id"`
	Token string `json:"token"`
	Error string `json:"error"`
}

// TestRetracedClient runs the official Retraced Node client
// (@retracedhq/retraced 0.7.23, web/package.json) against the whole service
// on PostgreSQL: reportEvent resolves — its own hash of the event matches
// the server's — with and without a target and group, with fields holding
// :, %, = and ;; getViewerToken answers a token that lists its group's
// events only; a key without audit:publish, and another tenant's group,
// are refused (the client rejects).
func TestRetracedClient(t *testing.T) {
	root := pgtest.RequireNodeModule(t, "the Retraced client test", "@retracedhq/retraced")
	s := newStack(t, storetest.Postgres(t))
	ctx := storetest.SystemContext()
	globex := storetest.Must(s.tenants.Create(ctx, tenant.CreateInput{Slug: "globex", Name: "Globex"}))
	key := func(tenantID string, scopes ...string) string {
		return storetest.Must(s.keys.Create(ctx, apikey.CreateInput{TenantID: tenantID, Name: "retraced", Scopes: scopes})).Plaintext
	}
	acmeKey, globexKey := key(acmeID, "audit:publish"), key(globex.ID.String(), "audit:publish")
	// globex has events too, which acme's viewer token must not list.
	res := do(t, s.srv, http.MethodPost, "/publisher/v1/project/"+globex.ID.String()+"/event",
		`{"action":"globex.secret","crud":"c","actor":{"id":"g"}}`, map[string]string{"Authorization": "Token token=" + globexKey})
	if res.status != http.StatusCreated {
		t.Fatalf("globex's event: %d %s", res.status, res.body)
	}

	runCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(runCtx, "node", filepath.Join(root, "web", "retraced-client", "publish.mjs"))
	cmd.Env = append(os.Environ(), "ENDPOINT="+s.srv.URL, "PROJECT_ID="+acmeID, "API_KEY="+acmeKey,
		"NO_SCOPE_KEY="+key(acmeID, "audit:read"), "GROUP_ID="+acmeID, "OTHER_GROUP_ID="+globex.ID.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node publish.mjs: %v\n%s", err, out)
	}
	steps := map[string]clientStep{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var st clientStep
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			t.Fatalf("publish.mjs printed %q: %v", sc.Text(), err)
		}
		steps[st.Step] = st
	}
	var published []string
	for _, name := range []string{"with_target", "without_target", "no_group_anonymous", "empty_fields"} {
		st, ok := steps[name]
		if !ok || !st.OK || st.ID == "" {
			t.Errorf("reportEvent %s: %+v, want it resolved with the event's id (the client's hash check passed)", name, st)
			continue
		}
		published = append(published, st.ID)
	}
	for _, tc := range []struct{ step, status string }{
		{"no_scope_event", "403"}, {"no_scope_viewer", "403"}, {"other_group_event", "404"}, {"other_group_viewer", "404"},
	} {
		if st := steps[tc.step]; st.OK || !strings.Contains(st.Error, tc.status) {
			t.Errorf("%s: %+v, want the client to reject it with %s", tc.step, st, tc.status)
		}
	}
	viewer := steps["viewer_token"]
	if !viewer.OK || !strings.HasPrefix(viewer.Token, "rtv1.") {
		t.Fatalf("getViewerToken: %+v", viewer)
	}

	// The viewer token lists acme's events, the client's among them, and
	// none of globex's.
	status, events, code := listEvents(t, s, "Bearer "+viewer.Token, `{"page_size":100}`)
	if status != http.StatusOK {
		t.Fatalf("ListEvents with the client's viewer token: %d %s", status, code)
	}
	seen := map[string]*v1.AuditEvent{}
	for _, e := range events {
		if e.Group.Id != acmeID {
			t.Errorf("the viewer token listed %s's event %s (%s)", e.Group.Id, e.Id, e.Action)
		}
		seen[e.Id] = e
	}
	for _, id := range published {
		if seen[id] == nil {
			t.Errorf("event %s the client published is not listed", id)
		}
	}
	if e := seen[steps["with_target"].ID]; e != nil {
		if e.Target.Id != "doc:42%" || e.Fields["all"] != "%3A:=;%" || e.Actor.Name != "Ada" || e.SourceIp != "10.1.2.3" {
			t.Errorf("stored %+v, want the client's target, actor, source_ip and fields", e)
		}
	}
	if status, _, _ := listEvents(t, s, "Bearer "+viewer.Token, `{"tenant_id":"`+globex.ID.String()+`"}`); status != http.StatusNotFound {
		t.Errorf("ListEvents of globex with acme's viewer token: %d, want 404", status)
	}
	// The read was recorded in acme's chain, as the token's actor.
	_, views, _ := listEvents(t, s, "", `{"tenant_id":"`+acmeID+`","action":"audit.log.view"}`)
	if len(views) != 1 || views[0].Actor.Id != "viewer:1" {
		t.Errorf("views %v, want the one read by viewer:1 (the refused one is none)", views)
	}
	res = do(t, s.srv, http.MethodPost, "/tenantregistry.v1.AuditService/VerifyAuditChain", `{"tenant_id":"`+acmeID+`"}`, nil)
	if res.status != http.StatusOK || !strings.Contains(res.body, `"ok":true`) {
		t.Errorf("acme's chain after the client's events: %d %s", res.status, res.body)
	}
}
