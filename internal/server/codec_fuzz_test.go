package server

import (
	"errors"
	"slices"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	_ "github.com/platform/tenant-registry/gen/tenantregistry/v1"
)

// requestTypes are the input messages of every RPC, in a stable order.
func requestTypes(tb testing.TB) []protoreflect.MessageType {
	seen := map[protoreflect.FullName]bool{}
	var names []protoreflect.FullName
	protoregistry.GlobalFiles.RangeFilesByPackage("tenantregistry.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			ms := fd.Services().Get(i).Methods()
			for j := 0; j < ms.Len(); j++ {
				if n := ms.Get(j).Input().FullName(); !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
		return true
	})
	slices.Sort(names)
	types := make([]protoreflect.MessageType, 0, len(names))
	for _, n := range names {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(n)
		if err != nil {
			tb.Fatal(err)
		}
		types = append(types, mt)
	}
	if len(types) < 20 {
		tb.Fatalf("only %d request types registered", len(types))
	}
	return types
}

// FuzzRESTDecode: the REST codec's Unmarshal, on any bytes into any request
// message, never panics; it fails exactly when protojson fails on the
// message's dynamic form (so the codec neither loses nor invents errors);
// every error is invalid_argument; and what it accepts round-trips: the
// documented JSON of the decoded message (proto field names) decodes to an
// equal message. Seeds: testdata/fuzz/FuzzRESTDecode.
func FuzzRESTDecode(f *testing.F) {
	types := requestTypes(f)
	codec := restJSONCodec(protoregistry.GlobalTypes)
	for i, body := range []string{
		`{}`, ``, `null`, `[]`, `{"slug":"acme","name":"Acme","plan":"starter"}`,
		`{"tenant_id":"00000000-0000-0000-0000-000000000001","fields":{"a":"b"},"actor":{"id":"x"}}`,
		`{"expires_at":"2030-01-01T00:00:00Z","scopes":["read"]}`, `{"expires_at":"yesterday"}`,
		`{"overlap_seconds":"9223372036854775808"}`, `{"page_size":1e99}`, `{"slug":"\ud800"}`,
		`{"unknown_field":{"deep":[1,2,3]}}`, `{"key":` + "\"\xff\"" + `}`, `{"fields":{"a":1}}`,
		`{"created_after":{"seconds":1}}`, `{"@type":"x"}`, `{"tenant_id":null}`, `{"tenantId":"camel"}`,
	} {
		f.Add([]byte(body), uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		mt := types[int(which)%len(types)]
		msg := mt.New().Interface()
		err := codec.Unmarshal(data, msg)
		dynErr := protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, dynamicpb.NewMessage(mt.Descriptor()))
		if (err == nil) != (dynErr == nil) {
			t.Fatalf("Unmarshal(%q) into %s: codec says %v, protojson on the dynamic type says %v", data, mt.Descriptor().FullName(), err, dynErr)
		}
		if err != nil {
			var cerr *connect.Error
			if !errors.As(err, &cerr) || cerr.Code() != connect.CodeInvalidArgument {
				t.Fatalf("Unmarshal(%q) into %s: %v is not invalid_argument", data, mt.Descriptor().FullName(), err)
			}
			return
		}
		out, err := codec.MarshalAppend(nil, msg)
		if err != nil {
			t.Fatalf("Marshal of the decoded %s: %v", mt.Descriptor().FullName(), err)
		}
		again := mt.New().Interface()
		if err := protojson.Unmarshal(out, again); err != nil {
			t.Fatalf("the documented JSON %s of %s does not decode: %v", out, mt.Descriptor().FullName(), err)
		}
		if !proto.Equal(msg, again) {
			t.Fatalf("round trip of %q into %s changed it: %v, then %v", data, mt.Descriptor().FullName(), msg, again)
		}
	})
}
