package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/project"
	"github.com/platform/tenant-registry/internal/tenant"
)

// tenantExporter streams everything held about a tenant (ExportTenant and
// GET /v1/tenants/{id}/export), reading through the services that own each
// part, each of which checks the caller's tenant: the tenant, its
// entitlements, projects, API key metadata (apiKeyPB: never a hash), IdP
// configuration (tenant.IdpConfigExport: never a secret) and audit events
// in chain order. Export records are the same objects the API answers.
type tenantExporter struct {
	tenants      *tenant.Service
	entitlements *entitlement.Service
	projects     *project.Service
	keys         *apikey.Service
	audit        *audit.Service
}

// Export record types (ExportTenantResponse.type).
const (
	exportTenant      = "tenant"
	exportEntitlement = "entitlement"
	exportProject     = "project"
	exportAPIKey      = "api_key"
	exportIdpConfig   = "idp_config"
	exportAuditEvent  = "audit_event"
)

func (x *tenantExporter) run(ctx context.Context, id string, emit func(*v1.ExportTenantResponse) error) error {
	t, err := x.tenants.Get(ctx, id)
	if err != nil {
		return err
	}
	tid := t.ID.String()
	if err := emit(&v1.ExportTenantResponse{Type: exportTenant, Record: &v1.ExportTenantResponse_Tenant{Tenant: tenantPB(t)}}); err != nil {
		return err
	}
	ents, err := x.entitlements.List(ctx, tid)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := emit(&v1.ExportTenantResponse{Type: exportEntitlement, Record: &v1.ExportTenantResponse_Entitlement{Entitlement: entitlementPB(e)}}); err != nil {
			return err
		}
	}
	if err := x.projects.ExportAll(ctx, t.ID, func(p *project.Project) error {
		return emit(&v1.ExportTenantResponse{Type: exportProject, Record: &v1.ExportTenantResponse_Project{Project: projectPB(p)}})
	}); err != nil {
		return err
	}
	for cur := ""; ; {
		keys, next, err := x.keys.List(ctx, apikey.ListInput{TenantID: tid, PageSize: 500, Cursor: cur})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := emit(&v1.ExportTenantResponse{Type: exportAPIKey, Record: &v1.ExportTenantResponse_ApiKey{ApiKey: apiKeyPB(k)}}); err != nil {
				return err
			}
		}
		if next == "" {
			break
		}
		cur = next
	}
	idp, err := x.tenants.IdpConfigExport(ctx, t.ID)
	if err != nil {
		return err
	}
	if idp != nil {
		st, err := structpb.NewStruct(idp)
		if err != nil {
			return err
		}
		if err := emit(&v1.ExportTenantResponse{Type: exportIdpConfig, Record: &v1.ExportTenantResponse_IdpConfig{IdpConfig: st}}); err != nil {
			return err
		}
	}
	return x.audit.Export(ctx, audit.ExportInput{TenantID: tid}, func(e *audit.Event) error {
		return emit(&v1.ExportTenantResponse{Type: exportAuditEvent, Record: &v1.ExportTenantResponse_AuditEvent{AuditEvent: auditEventPB(e)}})
	})
}

func (h *tenantHandler) ExportTenant(ctx context.Context, req *connect.Request[v1.ExportTenantRequest], stream *connect.ServerStream[v1.ExportTenantResponse]) error {
	return h.export.run(ctx, req.Msg.Id, stream.Send)
}

// exportNDJSON is the REST form of ExportTenant, GET /v1/tenants/{id}/export:
// application/x-ndjson, one record per line in the API's JSON,
// {"type":"tenant","tenant":{…}}, then entitlement, project, api_key,
// idp_config and audit_event lines. Errors as the audit export's: before
// the first line the usual JSON error and status, after it a last line
// {"error":{"code":…,"message":…}}.
func (x *tenantExporter) exportNDJSON(log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context() // caller, rule and tenant scope set by admitHTTP
		bw := bufio.NewWriterSize(w, 32<<10)
		started := false
		n := 0
		err := x.run(ctx, r.URL.Query().Get("id"), func(rec *v1.ExportTenantResponse) error {
			b, err := jsonMarshal.Marshal(rec)
			if err != nil {
				return err
			}
			if !started {
				started = true
				w.Header().Set("Content-Type", "application/x-ndjson")
				w.Header().Set("X-Content-Type-Options", "nosniff")
				w.WriteHeader(http.StatusOK)
			}
			bw.Write(b)
			bw.WriteByte('\n')
			if n++; n%audit.ExportBatch == 0 {
				if err := bw.Flush(); err != nil {
					return err
				}
				http.NewResponseController(w).Flush()
			}
			return nil
		})
		if err != nil {
			cerr := toConnectError(ctx, log, "GET /v1/tenants/{id}/export", err)
			var ce *connect.Error
			errors.As(cerr, &ce)
			if !started {
				writeJSONError(w, ce.Code(), ce.Message())
				return
			}
			line, _ := json.Marshal(map[string]map[string]string{"error": {"code": ce.Code().String(), "message": ce.Message()}})
			bw.Write(line)
			bw.WriteByte('\n')
		}
		_ = bw.Flush()
	}
}

// tenantExportRoute serves GET /v1/tenants/{id}/export; the path's
// /v1/tenants/by-slug/export is GetTenantBySlug of the slug "export", which
// goes on to the REST front (rest). The id from the path is the scoped
// "id" parameter (a query parameter of that name is overridden).
func tenantExportRoute(export, rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if id == "by-slug" {
			rest.ServeHTTP(w, r)
			return
		}
		q := r.URL.Query()
		q.Set("id", id)
		r.URL.RawQuery = q.Encode()
		export.ServeHTTP(w, r)
	})
}
