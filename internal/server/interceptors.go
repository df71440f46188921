package server

import (
	"context"
	"log/slog"
	"net"

	"connectrpc.com/connect"

	"github.com/platform/tenant-registry/internal/registry"
)

// errorInterceptor translates every handler error into its wire form (see
// toConnectError). It is the outermost interceptor.
type errorInterceptor struct{ log *slog.Logger }

func (i errorInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		if err != nil {
			return nil, toConnectError(ctx, i.log, req.Spec().Procedure, err)
		}
		return res, nil
	}
}

func (i errorInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i errorInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := next(ctx, conn); err != nil {
			return toConnectError(ctx, i.log, conn.Spec().Procedure, err)
		}
		return nil
	}
}

// callerInterceptor puts the caller (principal and source IP) into the
// context. Until token authentication lands, every caller is the dev
// principal.
type callerInterceptor struct{}

func (callerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		return next(withCaller(ctx, req.Peer()), req)
	}
}

func (callerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (callerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return next(withCaller(ctx, conn.Peer()), conn)
	}
}

func withCaller(ctx context.Context, peer connect.Peer) context.Context {
	ip := peer.Addr
	if host, _, err := net.SplitHostPort(peer.Addr); err == nil {
		ip = host
	}
	ctx = registry.WithSourceIP(ctx, ip)
	return registry.WithPrincipal(ctx, registry.DevPrincipal)
}
