package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// JSONContentType is the media type of the JSON API.
const JSONContentType = "application/json"

// JSONMarshaler is the runtime.Marshaler for application/json. It writes a
// proto message as protojson would with UseProtoNames and EmitUnpopulated,
// except that 64-bit integers are JSON numbers rather than strings:
//
//   - keys are the proto field names (snake_case), in declaration order;
//   - every field is present: zero scalars as 0, false or "", empty
//     repeated fields as [], empty maps as {}, unset message fields as null
//     (unset oneof members and proto3 optional fields are left out, as
//     protojson does);
//   - int64, uint64 and their fixed/sint variants are numbers (the API
//     contract: duration_ns etc. are integers; values above 2^53 lose
//     precision in JavaScript, which nanosecond durations never reach);
//   - google.protobuf.Timestamp is an RFC 3339 string in UTC with 0, 3, 6
//     or 9 fractional digits, exactly as protojson formats it; other
//     well-known types are formatted by protojson itself;
//   - map entries are sorted by key, so the output is deterministic (byte
//     for byte across builds, unlike protojson's, which varies whitespace on
//     purpose);
//   - strings are not HTML-escaped (paths are full of &), invalid UTF-8 is
//     written as U+FFFD rather than failing the response.
//
// The output is compact and ends with a newline. Values that are not proto
// messages are written by encoding/json. Unmarshal and NewDecoder delegate
// to protojson (the GET API has no request bodies).
type JSONMarshaler struct{}

var _ runtime.Marshaler = JSONMarshaler{}

// ContentType implements runtime.Marshaler.
func (JSONMarshaler) ContentType(any) string { return JSONContentType }

// Marshal implements runtime.Marshaler.
func (JSONMarshaler) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	var e jsonEncoder
	if err := e.message(m.ProtoReflect()); err != nil {
		return nil, err
	}
	e.buf = append(e.buf, '\n')
	return e.buf, nil
}

var protoUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// Unmarshal implements runtime.Marshaler.
func (JSONMarshaler) Unmarshal(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return protoUnmarshal.Unmarshal(data, m)
	}
	return json.Unmarshal(data, v)
}

// NewDecoder implements runtime.Marshaler.
func (j JSONMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		return j.Unmarshal(data, v)
	})
}

// NewEncoder implements runtime.Marshaler.
func (j JSONMarshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := j.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}

type jsonEncoder struct {
	buf []byte
}

const timestampName protoreflect.FullName = "google.protobuf.Timestamp"

func (e *jsonEncoder) message(m protoreflect.Message) error {
	if !m.IsValid() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	d := m.Descriptor()
	if d.FullName() == timestampName {
		return e.timestamp(m)
	}
	if strings.HasPrefix(string(d.FullName()), "google.protobuf.") {
		return e.wellKnown(m)
	}
	e.buf = append(e.buf, '{')
	fields := d.Fields()
	first := true
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil && !m.Has(fd) {
			continue
		}
		if !first {
			e.buf = append(e.buf, ',')
		}
		first = false
		e.string(string(fd.Name()))
		e.buf = append(e.buf, ':')
		if err := e.field(m, fd); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	return nil
}

func (e *jsonEncoder) field(m protoreflect.Message, fd protoreflect.FieldDescriptor) error {
	switch {
	case fd.IsList():
		l := m.Get(fd).List()
		e.buf = append(e.buf, '[')
		for i := range l.Len() {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.single(fd, l.Get(i)); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
		return nil
	case fd.IsMap():
		return e.mapField(m.Get(fd).Map(), fd)
	case fd.HasPresence() && !m.Has(fd):
		// Unset message fields (and proto2 optional scalars): protojson's
		// EmitUnpopulated writes null. Unset proto3 optional fields are
		// synthetic oneof members, left out above as protojson does.
		e.buf = append(e.buf, "null"...)
		return nil
	default:
		return e.single(fd, m.Get(fd))
	}
}

func (e *jsonEncoder) mapField(mp protoreflect.Map, fd protoreflect.FieldDescriptor) error {
	keys := make([]protoreflect.MapKey, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, compareKeys)
	e.buf = append(e.buf, '{')
	for i, k := range keys {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		// JSON object keys are strings whatever the proto key type.
		e.string(k.String())
		e.buf = append(e.buf, ':')
		if err := e.single(fd.MapValue(), mp.Get(k)); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	return nil
}

// compareKeys orders map keys as protojson's deterministic mode does: false
// before true, integers numerically, strings bytewise.
func compareKeys(a, b protoreflect.MapKey) int {
	switch av := a.Interface().(type) {
	case bool:
		bv := b.Bool()
		switch {
		case av == bv:
			return 0
		case !av:
			return -1
		default:
			return 1
		}
	case int32, int64:
		return cmpOrdered(a.Int(), b.Int())
	case uint32, uint64:
		return cmpOrdered(a.Uint(), b.Uint())
	default:
		return strings.Compare(a.String(), b.String())
	}
}

func cmpOrdered[T int64 | uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// single writes one value of fd's kind: a list element, a map value or a
// singular field.
func (e *jsonEncoder) single(fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		e.buf = strconv.AppendBool(e.buf, v.Bool())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
	case protoreflect.FloatKind:
		e.float(v.Float(), 32)
	case protoreflect.DoubleKind:
		e.float(v.Float(), 64)
	case protoreflect.StringKind:
		e.string(v.String())
	case protoreflect.BytesKind:
		e.buf = append(e.buf, '"')
		e.buf = base64.StdEncoding.AppendEncode(e.buf, v.Bytes())
		e.buf = append(e.buf, '"')
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			e.buf = append(e.buf, "null"...)
			break
		}
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			e.string(string(ev.Name()))
		} else {
			e.buf = strconv.AppendInt(e.buf, int64(v.Enum()), 10)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return e.message(v.Message())
	default:
		return fmt.Errorf("gateway: cannot encode field %s of kind %v", fd.FullName(), fd.Kind())
	}
	return nil
}

// float follows protojson: NaN and infinities as strings, otherwise the
// shortest representation, in exponent form only for very large or small
// magnitudes.
func (e *jsonEncoder) float(f float64, bits int) {
	switch {
	case math.IsNaN(f):
		e.buf = append(e.buf, `"NaN"`...)
		return
	case math.IsInf(f, 1):
		e.buf = append(e.buf, `"Infinity"`...)
		return
	case math.IsInf(f, -1):
		e.buf = append(e.buf, `"-Infinity"`...)
		return
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	e.buf = strconv.AppendFloat(e.buf, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 → 1e-7, as encoding/json and protojson write it.
		n := len(e.buf)
		if n >= 4 && e.buf[n-4] == 'e' && e.buf[n-3] == '-' && e.buf[n-2] == '0' {
			e.buf[n-2] = e.buf[n-1]
			e.buf = e.buf[:n-1]
		}
	}
}

// The range protojson accepts for a Timestamp: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

func (e *jsonEncoder) timestamp(m protoreflect.Message) error {
	fields := m.Descriptor().Fields()
	secs := m.Get(fields.ByNumber(1)).Int()
	nanos := m.Get(fields.ByNumber(2)).Int()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds {
		return fmt.Errorf("gateway: %s: seconds out of range %d", timestampName, secs)
	}
	if nanos < 0 || nanos > 999_999_999 {
		return fmt.Errorf("gateway: %s: nanos out of range %d", timestampName, nanos)
	}
	// As protojson: Z-normalised, with 0, 3, 6 or 9 fractional digits.
	x := time.Unix(secs, nanos).UTC().Format("2006-01-02T15:04:05.000000000")
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, ".000")
	e.string(x + "Z")
	return nil
}

// wellKnown hands the other google.protobuf types (Duration, wrappers,
// Struct, Any, ...) to protojson, whose JSON mapping for them is special,
// and compacts the result so the output stays deterministic.
func (e *jsonEncoder) wellKnown(m protoreflect.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m.Interface())
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return err
	}
	e.buf = append(e.buf, out.Bytes()...)
	return nil
}

const hexDigits = "0123456789abcdef"

// string writes s as a JSON string, escaping only what JSON requires (as
// protojson does) and replacing invalid UTF-8 with U+FFFD.
func (e *jsonEncoder) string(s string) {
	e.buf = append(e.buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				e.buf = append(e.buf, "\uFFFD"...)
			} else {
				e.buf = append(e.buf, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch {
		case c == '"' || c == '\\':
			e.buf = append(e.buf, '\\', c)
		case c == '\n':
			e.buf = append(e.buf, `\n`...)
		case c == '\r':
			e.buf = append(e.buf, `\r`...)
		case c == '\t':
			e.buf = append(e.buf, `\t`...)
		case c == '\b':
			e.buf = append(e.buf, `\b`...)
		case c == '\f':
			e.buf = append(e.buf, `\f`...)
		case c < 0x20 || c == 0x7f:
			e.buf = append(e.buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			e.buf = append(e.buf, c)
		}
		i++
	}
	e.buf = append(e.buf, '"')
}
