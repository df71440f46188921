package server

import (
	"errors"
	"strings"

	"connectrpc.com/connect"
	"connectrpc.com/vanguard"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The documented JSON uses the proto field names (snake_case) and always
// shows scalar fields and lists, so `"valid": false` and `"products": []` are
// there for curl users; unset messages (timestamps) and optional fields are
// left out.
var (
	jsonMarshal   = protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}
	jsonUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// jsonCodec is the Connect codec for "json" (application/json).
type jsonCodec struct{}

var _ connect.Codec = jsonCodec{}

func (jsonCodec) Name() string { return "json" }

func (jsonCodec) Marshal(v any) ([]byte, error) {
	msg, ok := v.(proto.Message)
	if !ok {
		return nil, errNotProto
	}
	return jsonMarshal.Marshal(msg)
}

func (jsonCodec) Unmarshal(data []byte, v any) error {
	msg, ok := v.(proto.Message)
	if !ok {
		return errNotProto
	}
	if len(data) == 0 {
		// An empty body is an empty message, as for Connect GETs.
		return nil
	}
	return jsonUnmarshal.Unmarshal(data, msg)
}

// restJSONCodec is the same JSON for the REST transcoder.
func restJSONCodec(res vanguard.TypeResolver) vanguard.Codec {
	c := vanguard.NewJSONCodec(res)
	c.MarshalOptions = jsonMarshal
	c.MarshalOptions.Resolver = res
	c.UnmarshalOptions = jsonUnmarshal
	c.UnmarshalOptions.Resolver = res
	return restCodec{c}
}

// restCodec reports a body that does not decode as the client's mistake
// (invalid_argument, 400), not as an unknown server error.
type restCodec struct{ *vanguard.JSONCodec }

func (c restCodec) Unmarshal(data []byte, msg proto.Message) error {
	return badBody(c.JSONCodec.Unmarshal(data, msg))
}

func (c restCodec) UnmarshalField(data []byte, msg proto.Message, field protoreflect.FieldDescriptor) error {
	return badBody(c.JSONCodec.UnmarshalField(data, msg, field))
}

// badBody is a decoding error as the client sees it: invalid_argument, its
// text valid UTF-8 even where it quotes the client's bytes (an error
// message is a proto string too).
func badBody(err error) error {
	if err == nil {
		return nil
	}
	return connect.NewError(connect.CodeInvalidArgument, errors.New("request body: "+strings.ToValidUTF8(err.Error(), "\uFFFD")))
}
