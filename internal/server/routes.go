package server

import (
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/vanguard"

	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
)

// addRoutes is the whole HTTP surface of tenant-registry:
//
//	GET  /healthz, /readyz                         plain HTTP probes (/readyz: 503 while draining)
//	GET  /v1/audit/export                          plain HTTP: ExportEvents as NDJSON
//	GET  /v1/tenants/{id}/export                   plain HTTP: ExportTenant as NDJSON
//	POST /publisher/v1/project/{project_id}/event  plain HTTP: the Retraced publisher API
//	GET  /publisher/v1/project/{project_id}/viewertoken    (publisher.go)
//	/tenantregistry.v1.<Service>/<Method>          Connect (proto and JSON), gRPC, gRPC-Web
//	/grpc.health.v1.Health/Check, List (Watch)     gRPC health: the database's ping and the drain, as /readyz
//	/grpc.reflection.v1(alpha).ServerReflection/…  gRPC reflection
//	everything else                                the REST shim: the google.api.http
//	                                               paths of the protos (the README's API table);
//	                                               by-slug and claims called directly (rest_direct.go)
func addRoutes(mux *http.ServeMux, d Deps, opts ...connect.HandlerOption) error {
	mux.HandleFunc("GET /healthz", handleHealthz)
	mux.Handle("GET /readyz", handleReadyz(d.Store, d.Drain, d.Logger))
	// ExportEvents' REST form streams NDJSON: a plain handler, not the
	// transcoder (see auditHandler.exportNDJSON).
	auditH := &auditHandler{audit: d.Audit, log: d.Logger}
	mux.Handle("GET /v1/audit/export", streamDeadlines(streamIdleTimeout, admitHTTP(d.Auth, d.Logger,
		tenantregistryv1connect.AuditServiceExportEventsProcedure, auditH.exportNDJSON)))

	exporter := &tenantExporter{tenants: d.Tenants, entitlements: d.Entitlements, projects: d.Projects, keys: d.APIKeys, audit: d.Audit}
	services := []service{
		rpcService(tenantregistryv1connect.NewTenantServiceHandler(&tenantHandler{tenants: d.Tenants, export: exporter, sso: d.SSO}, opts...)),
		rpcService(tenantregistryv1connect.NewProjectServiceHandler(&projectHandler{projects: d.Projects}, opts...)),
		rpcService(tenantregistryv1connect.NewEntitlementServiceHandler(&entitlementHandler{entitlements: d.Entitlements}, opts...)),
		rpcService(tenantregistryv1connect.NewCatalogServiceHandler(&catalogHandler{catalog: d.Catalog, entitlements: d.Entitlements}, opts...)),
		rpcService(tenantregistryv1connect.NewApiKeyServiceHandler(&apiKeyHandler{keys: d.APIKeys}, opts...)),
		rpcService(tenantregistryv1connect.NewInternalServiceHandler(&internalHandler{tenants: d.Tenants, apiKeys: d.APIKeys}, opts...)),
		rpcService(tenantregistryv1connect.NewAuditServiceHandler(auditH, opts...)),
		rpcService(tenantregistryv1connect.NewSsoServiceHandler(&ssoHandler{sso: d.SSO}, opts...)),
		rpcService(tenantregistryv1connect.NewWebhookServiceHandler(&webhookHandler{webhooks: d.Webhooks}, opts...)),
	}
	names := make([]string, 0, len(services))
	rest := make([]*vanguard.Service, 0, len(services))
	for _, s := range services {
		// The RPC routes go straight to the Connect handlers, so a plain
		// Connect JSON POST (without Connect-Protocol-Version) works too.
		mux.Handle(s.path, s.handler)
		for proc, d := range longRPCs {
			if strings.HasPrefix(proc, s.path) {
				mux.Handle(proc, longUnary(d, s.handler))
			}
		}
		if s.name == tenantregistryv1connect.AuditServiceName {
			// The streaming RPC outlives the server's timeouts too.
			mux.Handle(tenantregistryv1connect.AuditServiceExportEventsProcedure, streamDeadlines(streamIdleTimeout, s.handler))
		}
		if s.name == tenantregistryv1connect.TenantServiceName {
			mux.Handle(tenantregistryv1connect.TenantServiceExportTenantProcedure, streamDeadlines(streamIdleTimeout, s.handler))
		}
		names = append(names, s.name)
		rest = append(rest, vanguard.NewService(s.path, s.handler,
			vanguard.WithTargetProtocols(vanguard.ProtocolConnect),
			vanguard.WithTargetCodecs(vanguard.CodecProto),
			// In-process: compressing between the transcoder and the
			// handler only burns CPU.
			vanguard.WithNoTargetCompression(),
			// Query parameters that are no field of the request are
			// ignored (restFront documents the rules for URLs).
			vanguard.WithRESTUnmarshalOptions(vanguard.RESTUnmarshalOptions{DiscardUnknownQueryParams: true})))
	}
	healthHandlers(mux, &healthChecker{store: d.Store, drain: d.Drain, log: d.Logger, services: names})
	reflector := grpcreflect.NewStaticReflector(names...)
	// Reflection's one procedure only (its handler would take any path
	// under the service), and only where a bidi stream can run.
	v1Path, v1 := grpcreflect.NewHandlerV1(reflector)
	alphaPath, alpha := grpcreflect.NewHandlerV1Alpha(reflector)
	mux.Handle(v1Path+"ServerReflectionInfo", http2Only(v1))
	mux.Handle(alphaPath+"ServerReflectionInfo", http2Only(alpha))

	transcoder, err := vanguard.NewTranscoder(rest, vanguard.WithCodec(restJSONCodec))
	if err != nil {
		return err
	}
	routes, err := restRoutes(names)
	if err != nil {
		return err
	}
	routes = append(routes, plainRoutes("/healthz", "/readyz", "/v1/audit/export", "/v1/tenants/{id}/export")...)
	if d.APIKeys != nil && d.Audit != nil && d.ViewerTokens != nil {
		pub := &publisher{keys: d.APIKeys, audit: d.Audit, viewers: d.ViewerTokens, log: d.Logger}
		mux.Handle(http.MethodPost+" "+publisherEventPath, limitBody(maxBodyBytes, http.HandlerFunc(pub.event)))
		mux.Handle(http.MethodGet+" "+publisherViewerPath, http.HandlerFunc(pub.viewerToken))
		routes = append(routes, plainRoute(http.MethodPost, publisherEventPath), plainRoute(http.MethodGet, publisherViewerPath))
	}
	direct := &restDirect{next: restErrors(transcoder)}
	for _, s := range services {
		switch s.name {
		case tenantregistryv1connect.TenantServiceName:
			direct.tenants = s.handler
		case tenantregistryv1connect.InternalServiceName:
			direct.internal = s.handler
		}
	}
	restHandler := limitBody(maxBodyBytes, restFront(routes, direct))
	mux.Handle("/", restHandler)
	// ExportTenant's REST form streams NDJSON like the audit export.
	mux.Handle("GET /v1/tenants/{id}/export", tenantExportRoute(streamDeadlines(streamIdleTimeout, admitHTTP(d.Auth, d.Logger,
		tenantregistryv1connect.TenantServiceExportTenantProcedure, exporter.exportNDJSON(d.Logger))), restHandler))
	return nil
}

// http2Only answers a bidirectional stream's route 400 on HTTP/1.1, where
// it cannot run (the handler would answer 505).
func http2Only(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor < 2 {
			writeError(w, http.StatusBadRequest, connect.CodeInvalidArgument, "gRPC reflection is a bidirectional stream: call it over HTTP/2 (h2c)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// service is one RPC service: its route prefix and Connect handler.
type service struct {
	name, path string
	handler    http.Handler
}

// rpcService takes what a generated New…ServiceHandler returns.
func rpcService(path string, h http.Handler) service {
	return service{name: strings.Trim(path, "/"), path: path, handler: h}
}
