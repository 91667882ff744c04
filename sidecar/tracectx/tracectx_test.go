package tracectx

import (
	"strings"
	"testing"
)

const (
	tid   = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid   = "00f067aa0ba902b7"
	tid64 = "a3ce929d0e0e4736"
)

func TestFromHeaders(t *testing.T) {
	tests := []struct {
		name string
		h    map[string]string
		want Context
		ok   bool
	}{
		{
			name: "traceparent sampled",
			h:    map[string]string{"traceparent": "00-" + tid + "-" + sid + "-01"},
			want: Context{TraceID: tid, SpanID: sid, Sampled: true, Source: "traceparent"}, ok: true,
		},
		{
			name: "traceparent not sampled, surrounding space",
			h:    map[string]string{"traceparent": " 00-" + tid + "-" + sid + "-00\t"},
			want: Context{TraceID: tid, SpanID: sid, Source: "traceparent"}, ok: true,
		},
		{
			name: "traceparent future version with extra field",
			h:    map[string]string{"traceparent": "cc-" + tid + "-" + sid + "-03-whatever"},
			want: Context{TraceID: tid, SpanID: sid, Sampled: true, Source: "traceparent"}, ok: true,
		},
		{
			name: "traceparent future version exact length",
			h:    map[string]string{"traceparent": "01-" + tid + "-" + sid + "-01"},
			want: Context{TraceID: tid, SpanID: sid, Sampled: true, Source: "traceparent"}, ok: true,
		},
		{
			name: "traceparent wins over b3",
			h: map[string]string{
				"traceparent": "00-" + tid + "-" + sid + "-01",
				"b3":          "11111111111111111111111111111111-2222222222222222-0",
			},
			want: Context{TraceID: tid, SpanID: sid, Sampled: true, Source: "traceparent"}, ok: true,
		},
		{
			name: "invalid traceparent falls through to b3",
			h: map[string]string{
				"traceparent": "00-" + strings.Repeat("0", 32) + "-" + sid + "-01",
				"b3":          tid + "-" + sid + "-1",
			},
			want: Context{TraceID: tid, SpanID: sid, Sampled: true, Source: "b3"}, ok: true,
		},
		{
			name: "b3 64-bit trace id padded, debug",
			h:    map[string]string{"b3": tid64 + "-" + sid + "-d-" + "0102030405060708"},
			want: Context{TraceID: strings.Repeat("0", 16) + tid64, SpanID: sid, Sampled: true, Source: "b3"}, ok: true,
		},
		{
			name: "b3 uppercase normalised, no sampling",
			h:    map[string]string{"b3": strings.ToUpper(tid) + "-" + strings.ToUpper(sid)},
			want: Context{TraceID: tid, SpanID: sid, Source: "b3"}, ok: true,
		},
		{
			name: "b3 sampling-only falls through to multi",
			h: map[string]string{
				"b3":           "1",
				"x-b3-traceid": tid64,
				"x-b3-spanid":  sid,
				"x-b3-sampled": "true",
			},
			want: Context{TraceID: strings.Repeat("0", 16) + tid64, SpanID: sid, Sampled: true, Source: "x-b3-traceid"}, ok: true,
		},
		{
			name: "b3 multi debug flag",
			h:    map[string]string{"x-b3-traceid": tid, "x-b3-spanid": sid, "x-b3-flags": "1"},
			want: Context{TraceID: tid, SpanID: sid, Sampled: true, Source: "x-b3-traceid"}, ok: true,
		},
		{
			name: "b3 multi not sampled",
			h:    map[string]string{"x-b3-traceid": tid, "x-b3-spanid": sid, "x-b3-sampled": "0"},
			want: Context{TraceID: tid, SpanID: sid, Source: "x-b3-traceid"}, ok: true,
		},
		{
			name: "b3 multi missing span falls through to uber",
			h:    map[string]string{"x-b3-traceid": tid, "uber-trace-id": "abc:def:0:1"},
			want: Context{TraceID: strings.Repeat("0", 29) + "abc", SpanID: strings.Repeat("0", 13) + "def", Sampled: true, Source: "uber-trace-id"}, ok: true,
		},
		{
			name: "uber full length not sampled",
			h:    map[string]string{"uber-trace-id": tid + ":" + sid + ":0:0"},
			want: Context{TraceID: tid, SpanID: sid, Source: "uber-trace-id"}, ok: true,
		},
		{
			name: "uber url-encoded separators, uppercase",
			h:    map[string]string{"uber-trace-id": "ABC%3Adef%3a123%3A3"},
			want: Context{TraceID: strings.Repeat("0", 29) + "abc", SpanID: strings.Repeat("0", 13) + "def", Sampled: true, Source: "uber-trace-id"}, ok: true,
		},
		{name: "none", h: map[string]string{"host": "x"}},
		{name: "nil map", h: nil},
		{name: "traceparent version ff", h: map[string]string{"traceparent": "ff-" + tid + "-" + sid + "-01"}},
		{name: "traceparent v00 extra field", h: map[string]string{"traceparent": "00-" + tid + "-" + sid + "-01-x"}},
		{name: "traceparent future version bad extra", h: map[string]string{"traceparent": "01-" + tid + "-" + sid + "-01x"}},
		{name: "traceparent uppercase", h: map[string]string{"traceparent": "00-" + strings.ToUpper(tid) + "-" + sid + "-01"}},
		{name: "traceparent zero span", h: map[string]string{"traceparent": "00-" + tid + "-0000000000000000-01"}},
		{name: "traceparent short trace", h: map[string]string{"traceparent": "00-" + tid[1:] + "-" + sid + "-01"}},
		{name: "traceparent non-hex flags", h: map[string]string{"traceparent": "00-" + tid + "-" + sid + "-0g"}},
		{name: "traceparent truncated", h: map[string]string{"traceparent": "00-" + tid + "-" + sid[:8]}},
		{name: "b3 bad sampling", h: map[string]string{"b3": tid + "-" + sid + "-x"}},
		{name: "b3 24-hex trace", h: map[string]string{"b3": tid[:24] + "-" + sid}},
		{name: "b3 bad parent", h: map[string]string{"b3": tid + "-" + sid + "-1-zz"}},
		{name: "b3 too many parts", h: map[string]string{"b3": tid + "-" + sid + "-1-" + sid + "-x"}},
		{name: "b3 zero trace", h: map[string]string{"b3": strings.Repeat("0", 16) + "-" + sid}},
		{name: "uber three parts", h: map[string]string{"uber-trace-id": "abc:def:0"}},
		{name: "uber zero trace", h: map[string]string{"uber-trace-id": "0:def:0:1"}},
		{name: "uber empty span", h: map[string]string{"uber-trace-id": "abc::0:1"}},
		{name: "uber long trace", h: map[string]string{"uber-trace-id": tid + "0:def:0:1"}},
		{name: "uber bad flags", h: map[string]string{"uber-trace-id": "abc:def:0:xyz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromHeaders(tt.h)
			if ok != tt.ok || got != tt.want {
				t.Errorf("FromHeaders = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		c := Generate()
		if !c.Generated || c.Source != SourceGenerated || c.SpanID != "" || c.Sampled {
			t.Fatalf("Generate() = %+v", c)
		}
		if len(c.TraceID) != 32 || !isLowerHex(c.TraceID) || allZero(c.TraceID) {
			t.Fatalf("bad trace id %q", c.TraceID)
		}
		if seen[c.TraceID] {
			t.Fatalf("duplicate trace id %q", c.TraceID)
		}
		seen[c.TraceID] = true
		// A generated id must round-trip through the strictest parser.
		if _, ok := parseTraceparent("00-" + c.TraceID + "-" + NewSpanID() + "-01"); !ok {
			t.Fatalf("generated ids rejected by traceparent parser: %q", c.TraceID)
		}
	}
}

func TestNewSpanID(t *testing.T) {
	for range 100 {
		s := NewSpanID()
		if len(s) != 16 || !isLowerHex(s) || allZero(s) {
			t.Fatalf("bad span id %q", s)
		}
	}
}

func FuzzFromHeaders(f *testing.F) {
	f.Add("00-"+tid+"-"+sid+"-01", tid+"-"+sid+"-1-"+sid, tid64, sid, "1", tid+":"+sid+":0:1")
	f.Add("ff-"+tid+"-"+sid+"-01", "d", "", "", "", "1%3A2%3A0%3A1")
	f.Add("01-"+tid+"-"+sid+"-01-", "-", "x", "y", "true", ":::")
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, tp, b3, b3t, b3s, b3smp, uber string) {
		h := map[string]string{
			"traceparent": tp, "b3": b3, "x-b3-traceid": b3t,
			"x-b3-spanid": b3s, "x-b3-sampled": b3smp, "uber-trace-id": uber,
		}
		c, ok := FromHeaders(h)
		if !ok {
			if c != (Context{}) {
				t.Fatalf("non-zero context %+v with ok=false", c)
			}
			return
		}
		if len(c.TraceID) != 32 || !isLowerHex(c.TraceID) || allZero(c.TraceID) {
			t.Fatalf("bad trace id %q from %q", c.TraceID, h)
		}
		if len(c.SpanID) != 16 || !isLowerHex(c.SpanID) || allZero(c.SpanID) {
			t.Fatalf("bad span id %q from %q", c.SpanID, h)
		}
		if c.Generated || c.Source == "" {
			t.Fatalf("bad source %+v", c)
		}
	})
}

// FromHeaders must read nothing outside HeaderNames, or a parser that keeps
// only those would lose trace context.
func TestHeaderNamesCoverFromHeaders(t *testing.T) {
	full := map[string]string{
		"traceparent":       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"b3":                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
		"x-b3-traceid":      "463ac35c9f6413ad48485a3953bb6124",
		"x-b3-spanid":       "0020000000000001",
		"x-b3-sampled":      "1",
		"x-b3-flags":        "1",
		"x-b3-parentspanid": "0020000000000000",
		"uber-trace-id":     "5ef0a8c2c3bdb44e:5ef0a8c2c3bdb44e:0:1",
		"host":              "x",
	}
	kept := func(h map[string]string) map[string]string {
		out := map[string]string{}
		for _, n := range HeaderNames {
			if v, ok := h[n]; ok {
				out[n] = v
			}
		}
		return out
	}
	// Drop sources one by one so each gets its turn to decide.
	for _, drop := range []string{"", "traceparent", "b3", "x-b3-traceid"} {
		delete(full, drop)
		want, wok := FromHeaders(full)
		got, gok := FromHeaders(kept(full))
		if want != got || wok != gok {
			t.Errorf("after dropping %q: full headers give %+v %v, kept ones %+v %v", drop, want, wok, got, gok)
		}
	}
}
