package server

import (
	"context"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/platform/tenant-registry/internal/errs"
)

// textInterceptor refuses a request whose text holds a NUL character, on
// every RPC and protocol: PostgreSQL cannot store one in text columns (and
// SQLite would), so both stores answer the same invalid_argument instead of
// one of them failing. Protobuf decoding has already refused invalid UTF-8.
type textInterceptor struct{}

func (textInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if msg, ok := req.Any().(proto.Message); ok {
			if err := checkText(msg.ProtoReflect(), ""); err != nil {
				return nil, err
			}
		}
		return next(ctx, req)
	}
}

func (textInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (textInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return next(ctx, textConn{conn})
	}
}

type textConn struct{ connect.StreamingHandlerConn }

func (c textConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	if m, ok := msg.(proto.Message); ok {
		return checkText(m.ProtoReflect(), "")
	}
	return nil
}

// checkText walks every string of m (fields, lists, map keys and values,
// nested messages) and answers Invalid naming the first that holds a NUL.
func checkText(m protoreflect.Message, prefix string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = checkValue(fd.MapValue(), mv, name+"["+k.String()+"]")
				if err == nil && fd.MapKey().Kind() == protoreflect.StringKind && hasNUL(k.String()) {
					err = nulError(name)
				}
				return err == nil
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = checkValue(fd, l.Get(i), name)
			}
		default:
			err = checkValue(fd, v, name)
		}
		return err == nil
	})
	return err
}

func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, name string) error {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if hasNUL(v.String()) {
			return nulError(name)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkText(v.Message(), name+".")
	}
	return nil
}

func hasNUL(s string) bool { return strings.IndexByte(s, 0) >= 0 }

func nulError(field string) error {
	return errs.Errorf(errs.Invalid, "%s: must not contain the NUL character", field)
}
