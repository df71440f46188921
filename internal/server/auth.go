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
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/principal"
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
			// A tenant caller refused an RPC (a platform admin's) about
			// another tenant learns only that it does not exist, as
			// everywhere else; about their own, that they may not.
			if errs.CodeOf(err) == errs.Forbidden && rule.TenantField != "" {
				if serr := scopeTenant(ctx, rule, req.Any()); serr != nil {
					return nil, serr
				}
			}
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
	ctx = principal.WithSourceIP(ctx, ip)
	p, err := i.authn.Authenticate(ctx, header)
	if err != nil {
		return ctx, auth.Rule{}, err
	}
	ctx = principal.With(ctx, p)
	rule, err := auth.Authorize(p, procedure)
	return ctx, rule, err
}

// scopeTenant applies rule.TenantField to a request message (see scope).
func scopeTenant(ctx context.Context, rule auth.Rule, req any) error {
	if rule.TenantField == "" {
		return nil
	}
	msg, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	m := msg.ProtoReflect()
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(rule.TenantField))
	if fd == nil || fd.Kind() != protoreflect.StringKind {
		return errs.Errorf(errs.Internal, "rule names no string field %q", rule.TenantField)
	}
	v, err := scope(ctx, m.Get(fd).String())
	if err == nil {
		m.Set(fd, protoreflect.ValueOfString(v))
	}
	return err
}

// scope is the tenant scope of every RPC and plain HTTP handler, applied
// to the value of the field its rule names: the canonical form of a UUID
// (any case names one tenant); for a tenant-scoped caller, empty means
// their own tenant and another tenant is not found.
func scope(ctx context.Context, v string) (string, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return "", err
	}
	v = ids.Canonical(v)
	if v == "" && p.TenantScoped() {
		return p.TenantID, nil
	}
	if v != "" {
		if err := principal.CheckTenant(ctx, v); err != nil {
			return "", err
		}
	}
	return v, nil
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
		if err == nil && rule.TenantField != "" {
			q := r.URL.Query()
			var v string
			if v, err = scope(ctx, q.Get(rule.TenantField)); err == nil {
				q.Set(rule.TenantField, v)
				r.URL.RawQuery = q.Encode()
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
