package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/auth"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/retraced"
)

// PublishScope is the API key scope the Retraced publisher API requires.
const PublishScope = "audit:publish"

// The Retraced publisher API's paths (plain handlers, as Retraced serves
// them).
const (
	publisherEventPath  = "/publisher/v1/project/{project_id}/event"
	publisherViewerPath = "/publisher/v1/project/{project_id}/viewertoken"
)

// publisher serves the Retraced publisher API for the official Retraced
// clients:
//
//	POST /publisher/v1/project/{project_id}/event        → 201 {"id","hash"}
//	GET  /publisher/v1/project/{project_id}/viewertoken  → 201 {"token"}
//
// Both take "Authorization: Token token=<API key>" (or "token=<API key>",
// which the client's reportEvent sends): a registry API key, checked by
// the cached verify, with the scope audit:publish. project_id is the key's
// project, or for a key without a project its tenant id; anything else is
// 404. The key publishes into its own tenant's group only.
type publisher struct {
	keys    *apikey.Service
	audit   *audit.Service
	viewers *auth.ViewerTokens
	log     *slog.Logger
}

// admit authenticates a publisher API request: the key's verdict, and the
// context carrying the key as the caller (a service of the key's tenant)
// and the source IP. A key without the scope is Forbidden, a project_id
// that is not the key's NotFound.
func (p *publisher) admit(r *http.Request) (context.Context, apikey.Verdict, error) {
	ctx := r.Context()
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	ctx = principal.WithSourceIP(ctx, ip)
	key, err := tokenOf(r.Header.Get("Authorization"))
	if err != nil {
		return ctx, apikey.Verdict{}, err
	}
	v, err := p.keys.Verify(ctx, key)
	if err != nil {
		return ctx, v, err
	}
	if !v.Valid {
		return ctx, v, errs.Errorf(errs.Unauthenticated, "API key not valid (%s)", v.Reason)
	}
	if !slices.Contains(v.Scopes, PublishScope) {
		return ctx, v, errs.Errorf(errs.Forbidden, "permission denied: the API key lacks the scope %s", PublishScope)
	}
	project := r.PathValue("project_id")
	want, what := v.ProjectID, "project id"
	if want == "" {
		want, what = v.TenantID, "tenant id (it belongs to no project)"
	}
	if !ids.Same(project, want) {
		return ctx, v, errs.Errorf(errs.NotFound, "project_id: not this API key's project: use the key's %s", what)
	}
	ctx = principal.With(ctx, principal.Principal{
		Subject: v.KeyID, Name: "API key " + v.KeyID, Type: principal.ActorService, TenantID: v.TenantID,
	})
	return ctx, v, nil
}

// tokenOf reads the API key from Retraced's Authorization header:
// "Token token=<key>" or bare "token=<key>" (the key optionally quoted).
func tokenOf(h string) (string, error) {
	if h == "" {
		return "", errs.Errorf(errs.Unauthenticated, `missing Authorization header: want "Token token=<API key>"`)
	}
	if scheme, rest, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Token") {
		h = strings.TrimSpace(rest)
	}
	key, ok := strings.CutPrefix(h, "token=")
	key = strings.Trim(key, `"`)
	if !ok || key == "" {
		return "", errs.Errorf(errs.Unauthenticated, `the Authorization header must be "Token token=<API key>"`)
	}
	return key, nil
}

// ownGroup checks that a group id named by the client is the key's
// tenant: another tenant's group is not found, as everywhere else.
func ownGroup(field, group, tenantID string) error {
	if _, err := ids.ParseTenant(field, group); err != nil {
		return err
	}
	if !ids.Same(group, tenantID) {
		return errs.Errorf(errs.NotFound, "%s: tenant not found (an API key publishes into its own tenant's group only)", field)
	}
	return nil
}

func (p *publisher) fail(w http.ResponseWriter, ctx context.Context, route string, err error) {
	cerr := toConnectError(ctx, p.log, route, err).(*connect.Error)
	writeJSONError(w, cerr.Code(), cerr.Message())
}

// event is POST …/event: the event joins the key's tenant's chain (the
// audit append, AppendEvent's checks), and the answer is Retraced's
// {"id","hash"}: the stored event's id and Retraced's hash of the event as
// sent under that id.
func (p *publisher) event(w http.ResponseWriter, r *http.Request) {
	const route = "POST " + publisherEventPath
	ctx, v, err := p.admit(r)
	if err != nil {
		p.fail(w, ctx, route, err)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, connect.CodeInvalidArgument,
			"request body: the publisher API takes JSON (Content-Type: application/json)")
		return
	}
	e, err := retraced.Decode(r.Body)
	if err != nil {
		p.fail(w, ctx, route, err)
		return
	}
	if e.Group.Present {
		if err := ownGroup("group.id", e.Group.ID, v.TenantID); err != nil {
			p.fail(w, ctx, route, err)
			return
		}
	}
	row, err := p.audit.Append(ctx, e.AppendInput(v.TenantID))
	if err != nil {
		p.fail(w, ctx, route, err)
		return
	}
	id := row.ID.String()
	writeJSON(w, http.StatusCreated, map[string]string{"id": id, "hash": retraced.Hash(id, e.HashInput())})
}

// viewerToken is GET …/viewertoken: a viewer token (auth.ViewerTokens)
// for the key's tenant's group, as actor_id.
func (p *publisher) viewerToken(w http.ResponseWriter, r *http.Request) {
	const route = "GET " + publisherViewerPath
	ctx, v, err := p.admit(r)
	if err != nil {
		p.fail(w, ctx, route, err)
		return
	}
	q, err := retraced.ParseViewerRequest(r.URL.Query())
	if err == nil {
		err = ownGroup("group_id", q.GroupID, v.TenantID)
	}
	if err != nil {
		p.fail(w, ctx, route, err)
		return
	}
	token, _ := p.viewers.Issue(principal.Viewer{
		GroupID: q.GroupID, ActorID: q.ActorID, IsAdmin: q.IsAdmin, ViewAction: q.ViewAction, KeyID: v.KeyID,
	})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]string{"token": token})
}

// recordView appends a viewer token's view action to its group's chain
// before the token's read (ListEvents, ExportEvents) is served; a view
// that cannot be recorded is not served. Other callers record nothing.
func recordView(ctx context.Context, a *audit.Service, procedure string) error {
	p, ok := principal.From(ctx)
	if !ok || p.Viewer == nil {
		return nil
	}
	in := audit.AppendInput{
		TenantID: p.Viewer.GroupID, Action: p.Viewer.ViewAction, CRUD: "r",
		Actor:       audit.Actor{ID: p.Viewer.ActorID},
		Description: "audit log read with a Retraced viewer token",
		Fields:      map[string]string{"procedure": procedure[strings.LastIndexByte(procedure, '/')+1:], "api_key_id": p.Viewer.KeyID},
	}
	if ip := principal.SourceIP(ctx); ip != "" && net.ParseIP(ip) != nil {
		in.SourceIP = ip
	}
	_, err := a.Append(ctx, in)
	return err
}
