package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/profilepb"
)

var protojsonRef = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// sameAsProtojson compares our output with protojson's: identical except
// that where protojson has a string holding an integer we have that number.
func sameAsProtojson(t *testing.T, m proto.Message) {
	t.Helper()
	ours, err := JSONMarshaler{}.Marshal(m)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	ref, err := protojsonRef.Marshal(m)
	if err != nil {
		t.Fatalf("protojson: %v", err)
	}
	if err := jsonEquiv(decodeAny(t, ours), decodeAny(t, ref), ""); err != nil {
		t.Errorf("%v\nours     %s\nprotojson %s", err, ours, ref)
	}
	// And protojson reads it back to the same message.
	back := m.ProtoReflect().New().Interface()
	if err := protojson.Unmarshal(ours, back); err != nil {
		t.Fatalf("protojson cannot read our output: %v\n%s", err, ours)
	}
	if !proto.Equal(back, m) {
		t.Errorf("round trip through protojson changed the message:\n got %v\nwant %v", back, m)
	}
}

func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, b)
	}
	return v
}

func jsonEquiv(ours, ref any, path string) error {
	switch r := ref.(type) {
	case map[string]any:
		o, ok := ours.(map[string]any)
		if !ok || len(o) != len(r) {
			return fmt.Errorf("%s: %#v vs %#v", path, ours, ref)
		}
		for k, rv := range r {
			ov, ok := o[k]
			if !ok {
				return fmt.Errorf("%s: key %q missing", path, k)
			}
			if err := jsonEquiv(ov, rv, path+"."+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		o, ok := ours.([]any)
		if !ok || len(o) != len(r) {
			return fmt.Errorf("%s: %#v vs %#v", path, ours, ref)
		}
		for i := range r {
			if err := jsonEquiv(o[i], r[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case string:
		if n, ok := ours.(json.Number); ok && string(n) == r && !strings.ContainsAny(r, ".eE") {
			return nil // a 64-bit integer: protojson's string, our number
		}
	}
	if ours != ref {
		return fmt.Errorf("%s: %#v vs %#v", path, ours, ref)
	}
	return nil
}

func TestJSONMatchesProtojson(t *testing.T) {
	full := profilepb.ToProto(slowProfile())
	full.Timeline = append(full.Timeline, &tracecamv1.Segment{Category: "lock", DurationNs: math.MaxInt64, WakerTid: math.MaxUint32})
	full.Dns[0].StartOffsetNs = math.MinInt64
	tests := map[string]proto.Message{
		"profile":       full,
		"empty profile": &tracecamv1.Profile{},
		"get trace":     &tracecamv1.GetTraceResponse{Profiles: []*tracecamv1.Profile{full, {}}, Sources: map[string]string{"b": "x", "a": "y"}},
		"empty list":    &tracecamv1.ListProfilesResponse{},
		"status":        &tracecamv1.Status{CgroupId: math.MaxUint64, EventsSeen: map[string]uint64{"z": 1, "a": math.MaxUint64}},
		"strings": &tracecamv1.Profile{
			Path: "/a?b=1&c=<d>\"\\\n\t\x01\x7f é ☃ \u2028", ThreadName: "\x00",
		},
		"timestamp": timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		"duration":  durationpb.New(1500 * time.Millisecond),
	}
	for name, m := range tests {
		t.Run(name, func(t *testing.T) { sameAsProtojson(t, m) })
	}
}

func TestJSONTimestampLikeProtojson(t *testing.T) {
	for _, ts := range []*timestamppb.Timestamp{
		{Seconds: 0},
		{Seconds: 1, Nanos: 100_000_000},
		{Seconds: 1, Nanos: 120_000},
		{Seconds: 1, Nanos: 123_456_789},
		{Seconds: 1, Nanos: 1},
		{Seconds: -62135596800},
		{Seconds: 253402300799, Nanos: 999_999_999},
	} {
		p := &tracecamv1.Profile{StartTime: ts}
		ours, err := JSONMarshaler{}.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := protojsonRef.Marshal(ts)
		want := `"start_time":` + string(ref)
		if !strings.Contains(string(ours), want) {
			t.Errorf("%v: ours %s, want %s", ts, ours, want)
		}
	}
	for _, bad := range []*timestamppb.Timestamp{{Seconds: -62135596801}, {Seconds: 253402300800}, {Nanos: -1}, {Nanos: 1e9}} {
		if _, err := (JSONMarshaler{}).Marshal(&tracecamv1.Profile{StartTime: bad}); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestJSONDetails(t *testing.T) {
	got, err := JSONMarshaler{}.Marshal(&tracecamv1.Profile{Path: "/a&b<c>\xff"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	for _, want := range []string{`"path":"/a&b<c>` + "\uFFFD" + `"`, `"start_time":null`, `"diagnosis":null`, `"breakdown":{}`, `"timeline":[]`} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %s:\n%s", want, s)
		}
	}
	if !strings.HasSuffix(s, "}\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("want one compact line: %q", s)
	}
	// Deterministic: map order never shows.
	m := &tracecamv1.GetTraceResponse{Sources: map[string]string{}}
	for i := range 50 {
		m.Sources[fmt.Sprint(i)] = "ok"
	}
	first, _ := JSONMarshaler{}.Marshal(m)
	for range 20 {
		if again, _ := (JSONMarshaler{}).Marshal(m); !bytes.Equal(again, first) {
			t.Fatal("output changes between calls")
		}
	}
	// Non-proto values go through encoding/json.
	if b, err := (JSONMarshaler{}).Marshal(map[string]int{"a": 1}); err != nil || string(b) != "{\"a\":1}\n" {
		t.Errorf("non-proto: %s %v", b, err)
	}
	// Unmarshal delegates to protojson, numbers or strings alike.
	var p tracecamv1.Profile
	if err := (JSONMarshaler{}).Unmarshal([]byte(`{"duration_ns":"5","pid":7,"unknown":1}`), &p); err != nil || p.DurationNs != 5 || p.Pid != 7 {
		t.Errorf("Unmarshal: %v %v", &p, err)
	}
}

// TestJSONAllKinds runs the walker over a message with every field kind,
// oneofs, proto3 optional fields and maps with non-string keys, checked
// against protojson.
func TestJSONAllKinds(t *testing.T) {
	md := allKindsDescriptor(t)
	m := dynamicpb.NewMessage(md)
	empty := dynamicpb.NewMessage(md)
	set := func(name string, v protoreflect.Value) { m.Set(md.Fields().ByName(protoreflect.Name(name)), v) }
	set("d", protoreflect.ValueOfFloat64(1.5e-7))
	set("f", protoreflect.ValueOfFloat32(3.25))
	set("big", protoreflect.ValueOfFloat64(1e21))
	set("nan", protoreflect.ValueOfFloat64(math.NaN()))
	set("inf", protoreflect.ValueOfFloat64(math.Inf(-1)))
	set("i64", protoreflect.ValueOfInt64(math.MinInt64))
	set("u64", protoreflect.ValueOfUint64(math.MaxUint64))
	set("s32", protoreflect.ValueOfInt32(-7))
	set("sf64", protoreflect.ValueOfInt64(-9))
	set("fx32", protoreflect.ValueOfUint32(9))
	set("bs", protoreflect.ValueOfBytes([]byte{0, 1, 0xff}))
	set("e", protoreflect.ValueOfEnum(1))
	set("unknown_e", protoreflect.ValueOfEnum(42))
	set("opt", protoreflect.ValueOfInt64(0))
	set("one_a", protoreflect.ValueOfString(""))
	im := m.Mutable(md.Fields().ByName("im")).Map()
	for _, k := range []int32{10, -2, 3} {
		im.Set(protoreflect.ValueOfInt32(k).MapKey(), protoreflect.ValueOfString(fmt.Sprint(k)))
	}
	bm := m.Mutable(md.Fields().ByName("bm")).Map()
	bm.Set(protoreflect.ValueOfBool(true).MapKey(), protoreflect.ValueOfInt64(1))
	bm.Set(protoreflect.ValueOfBool(false).MapKey(), protoreflect.ValueOfInt64(0))
	um := m.Mutable(md.Fields().ByName("um")).Map()
	um.Set(protoreflect.ValueOfUint64(math.MaxUint64).MapKey(), protoreflect.ValueOfUint64(1))
	um.Set(protoreflect.ValueOfUint64(2).MapKey(), protoreflect.ValueOfUint64(2))
	rl := m.Mutable(md.Fields().ByName("rl")).List()
	rl.Append(protoreflect.ValueOfInt64(1 << 62))
	child := m.Mutable(md.Fields().ByName("child")).Message()
	child.Set(md.Fields().ByName("i64"), protoreflect.ValueOfInt64(5))

	for name, msg := range map[string]*dynamicpb.Message{"set": m, "empty": empty} {
		t.Run(name, func(t *testing.T) {
			ours, err := JSONMarshaler{}.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := protojsonRef.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			if err := jsonEquiv(decodeAny(t, ours), decodeAny(t, ref), ""); err != nil {
				t.Errorf("%v\nours      %s\nprotojson %s", err, ours, ref)
			}
			if name == "set" {
				for _, want := range []string{`"im":{"-2":"-2","3":"3","10":"10"}`, `"bm":{"false":0,"true":1}`, `"d":1.5e-7`, `"big":1e+21`, `"u64":18446744073709551615`} {
					if !strings.Contains(string(ours), want) {
						t.Errorf("lacks %s:\n%s", want, ours)
					}
				}
			}
		})
	}
}

func allKindsDescriptor(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED
	field := func(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type, label descriptorpb.FieldDescriptorProto_Label, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ.Enum(), Label: label.Enum(), JsonName: proto.String(name)}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	entry := func(name string, k, v descriptorpb.FieldDescriptorProto_Type) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{
			Name: proto.String(name),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("key", 1, k, opt, ""), field("value", 2, v, opt, ""),
			},
			Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
		}
	}
	oneofA := field("one_a", 20, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, "")
	oneofA.OneofIndex = proto.Int32(0)
	oneofB := field("one_b", 21, descriptorpb.FieldDescriptorProto_TYPE_INT64, opt, "")
	oneofB.OneofIndex = proto.Int32(0)
	optional := field("opt", 22, descriptorpb.FieldDescriptorProto_TYPE_INT64, opt, "")
	optional.OneofIndex = proto.Int32(1)
	optional.Proto3Optional = proto.Bool(true)
	fdp := &descriptorpb.FileDescriptorProto{
		Name: proto.String("gatewaytest/all.proto"), Package: proto.String("gatewaytest"), Syntax: proto.String("proto3"),
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("E"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				{Name: proto.String("E_ZERO"), Number: proto.Int32(0)},
				{Name: proto.String("E_ONE"), Number: proto.Int32(1)},
			},
		}},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("All"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("d", 1, descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, opt, ""),
				field("f", 2, descriptorpb.FieldDescriptorProto_TYPE_FLOAT, opt, ""),
				field("big", 3, descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, opt, ""),
				field("nan", 4, descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, opt, ""),
				field("inf", 5, descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, opt, ""),
				field("i64", 6, descriptorpb.FieldDescriptorProto_TYPE_INT64, opt, ""),
				field("u64", 7, descriptorpb.FieldDescriptorProto_TYPE_UINT64, opt, ""),
				field("s32", 8, descriptorpb.FieldDescriptorProto_TYPE_SINT32, opt, ""),
				field("sf64", 9, descriptorpb.FieldDescriptorProto_TYPE_SFIXED64, opt, ""),
				field("fx32", 10, descriptorpb.FieldDescriptorProto_TYPE_FIXED32, opt, ""),
				field("bs", 11, descriptorpb.FieldDescriptorProto_TYPE_BYTES, opt, ""),
				field("e", 12, descriptorpb.FieldDescriptorProto_TYPE_ENUM, opt, ".gatewaytest.E"),
				field("unknown_e", 13, descriptorpb.FieldDescriptorProto_TYPE_ENUM, opt, ".gatewaytest.E"),
				field("im", 14, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, rep, ".gatewaytest.All.ImEntry"),
				field("bm", 15, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, rep, ".gatewaytest.All.BmEntry"),
				field("um", 16, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, rep, ".gatewaytest.All.UmEntry"),
				field("rl", 17, descriptorpb.FieldDescriptorProto_TYPE_SINT64, rep, ""),
				field("child", 18, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, opt, ".gatewaytest.All"),
				field("unset_child", 19, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, opt, ".gatewaytest.All"),
				oneofA, oneofB, optional,
			},
			NestedType: []*descriptorpb.DescriptorProto{
				entry("ImEntry", descriptorpb.FieldDescriptorProto_TYPE_INT32, descriptorpb.FieldDescriptorProto_TYPE_STRING),
				entry("BmEntry", descriptorpb.FieldDescriptorProto_TYPE_BOOL, descriptorpb.FieldDescriptorProto_TYPE_INT64),
				entry("UmEntry", descriptorpb.FieldDescriptorProto_TYPE_UINT64, descriptorpb.FieldDescriptorProto_TYPE_UINT64),
			},
			OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: proto.String("one")}, {Name: proto.String("_opt")}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName("All")
}
