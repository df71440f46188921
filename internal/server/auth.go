package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/platform/tenant-registry/internal/auth"
	"github.com/platform/tenant-registry/internal/registry"
)

// authInterceptor puts the caller into the context (principal and source
// IP), authorises the RPC against auth.Rules, and keeps tenant callers to
// their own tenant. It runs for Connect, gRPC, gRPC-Web and the REST shim
// alike (the shim calls the same handlers).
type authInterceptor struct{ authn *auth.Authenticator }

func (i authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, rule, err := i.admit(ctx, req.Spec().Procedure, req.Peer(), req.Header())
		if err != nil {
			return nil, err
		}
		if err := scopeTenant(ctx, rule, req.Any()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (i authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, rule, err := i.admit(ctx, conn.Spec().Procedure, conn.Peer(), conn.RequestHeader())
		if err != nil {
			return err
		}
		return next(ctx, &scopedConn{StreamingHandlerConn: conn, ctx: ctx, rule: rule})
	}
}

func (i authInterceptor) admit(ctx context.Context, procedure string, peer connect.Peer, header map[string][]string) (context.Context, auth.Rule, error) {
	ip := peer.Addr
	if host, _, err := net.SplitHostPort(peer.Addr); err == nil {
		ip = host
	}
	ctx = registry.WithSourceIP(ctx, ip)
	p, err := i.authn.Authenticate(ctx, header)
	if err != nil {
		return ctx, auth.Rule{}, err
	}
	ctx = registry.WithPrincipal(ctx, p)
	rule, err := auth.Authorize(p, procedure)
	return ctx, rule, err
}

// scopeTenant applies rule.TenantField to a tenant caller's request: empty
// means their own tenant; another tenant is not found.
func scopeTenant(ctx context.Context, rule auth.Rule, req any) error {
	p := registry.PrincipalFrom(ctx)
	if rule.TenantField == "" || !auth.TenantScoped(p) {
		return nil
	}
	msg, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	m := msg.ProtoReflect()
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(rule.TenantField))
	if fd == nil || fd.Kind() != protoreflect.StringKind {
		return registry.Errorf(registry.Internal, "rule names no string field %q", rule.TenantField)
	}
	switch v := m.Get(fd).String(); {
	case v == "":
		m.Set(fd, protoreflect.ValueOfString(p.TenantID))
	case registry.CanonicalID(v) == registry.CanonicalID(p.TenantID):
		// Any spelling of their own tenant's id.
	default:
		return registry.Errorf(registry.NotFound, "not found")
	}
	return nil
}

// scopedConn applies the tenant scope to a streaming request's message.
type scopedConn struct {
	connect.StreamingHandlerConn
	ctx  context.Context
	rule auth.Rule
}

func (c *scopedConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	return scopeTenant(c.ctx, c.rule, msg)
}

// admitHTTP gives a plain HTTP handler that stands for an RPC (the NDJSON
// export of ExportEvents) the same caller, rule and tenant scope as the
// interceptor gives the RPC; the scoped field is the query parameter of the
// same name.
func admitHTTP(authn *auth.Authenticator, log *slog.Logger, procedure string, next http.HandlerFunc) http.Handler {
	i := authInterceptor{authn: authn}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, rule, err := i.admit(r.Context(), procedure, connect.Peer{Addr: r.RemoteAddr}, r.Header)
		if err == nil && rule.TenantField != "" && auth.TenantScoped(registry.PrincipalFrom(ctx)) {
			p := registry.PrincipalFrom(ctx)
			q := r.URL.Query()
			switch v := q.Get(rule.TenantField); {
			case v == "":
				q.Set(rule.TenantField, p.TenantID)
				r.URL.RawQuery = q.Encode()
			case registry.CanonicalID(v) == registry.CanonicalID(p.TenantID):
			default:
				err = registry.Errorf(registry.NotFound, "not found")
			}
		}
		if err != nil {
			cerr := toConnectError(ctx, log, procedure, err).(*connect.Error)
			writeJSONError(w, cerr.Code(), cerr.Message())
			return
		}
		next(w, r.WithContext(ctx))
	})
}
