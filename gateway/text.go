package gateway

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/profilepb"
	"github.com/tracecam/tracecam/sidecar/render"
)

// TextContentType is the media type of the camera view.
const TextContentType = "text/plain; charset=utf-8"

// textMIME is the key the text marshaler is registered under; Accept must
// match it exactly, which the negotiation middleware ensures.
const textMIME = "text/plain"

// TextMarshaler is the runtime.Marshaler for text/plain: the camera view a
// person reads in a terminal (curl ...?format=text).
//
//   - GetTraceResponse: the trace as one story across pods
//     (render.TraceStory), the sources that could not answer, then each
//     profile as render.Text draws it;
//   - ListProfilesResponse: each profile, separated by a blank line;
//     "no profiles" when there are none.
//   - Profile: its camera view.
//   - Status: one "key: value" line per field, maps flattened as
//     "key.name: value" in key order, zero values included.
//   - ListBaselinesResponse: one line per endpoint: requests in the
//     window, median and p90 duration, the largest category medians.
//   - Any other message: prototext.
//
// Strings from the wire are escaped so they cannot drive the terminal.
// Unmarshal and NewDecoder delegate to [JSONMarshaler].
type TextMarshaler struct{}

var _ runtime.Marshaler = TextMarshaler{}

// ContentType implements runtime.Marshaler.
func (TextMarshaler) ContentType(any) string { return TextContentType }

// Marshal implements runtime.Marshaler.
func (TextMarshaler) Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	switch m := v.(type) {
	case *tracecamv1.GetTraceResponse:
		// The whole trace first, as one story across pods, then each
		// profile's camera view.
		ps := make([]*profile.Profile, len(m.GetProfiles()))
		for i, p := range m.GetProfiles() {
			ps[i] = profilepb.FromProto(p)
		}
		if len(ps) > 0 {
			if err := render.TraceStory(&buf, ps); err != nil {
				return nil, err
			}
			writeSources(&buf, m.GetSources())
			buf.WriteByte('\n')
		}
		if err := writeProfiles(&buf, m.GetProfiles()); err != nil {
			return nil, err
		}
		if len(ps) == 0 {
			writeSources(&buf, m.GetSources())
		}
	case *tracecamv1.ListProfilesResponse:
		if err := writeProfiles(&buf, m.GetProfiles()); err != nil {
			return nil, err
		}
	case *tracecamv1.Profile:
		if err := writeProfiles(&buf, []*tracecamv1.Profile{m}); err != nil {
			return nil, err
		}
	case *tracecamv1.Status:
		writeStatus(&buf, m)
	case *tracecamv1.ListBaselinesResponse:
		writeBaselines(&buf, m)
	case proto.Message:
		b, err := prototext.MarshalOptions{Multiline: true}.Marshal(m)
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	default:
		fmt.Fprintf(&buf, "%v\n", v)
	}
	return buf.Bytes(), nil
}

// writeSources says which sources could not answer (nothing when all did).
func writeSources(w *bytes.Buffer, src map[string]string) {
	keys := slices.Sorted(maps.Keys(src))
	for _, k := range keys {
		if v := src[k]; v != "ok" {
			fmt.Fprintf(w, "  (%s: %s)\n", k, v)
		}
	}
}

func writeProfiles(w *bytes.Buffer, ps []*tracecamv1.Profile) error {
	if len(ps) == 0 {
		w.WriteString("no profiles\n")
		return nil
	}
	for i, p := range ps {
		if i > 0 {
			w.WriteByte('\n')
		}
		if err := render.Text(w, profilepb.FromProto(p)); err != nil {
			return err
		}
	}
	return nil
}

func writeStatus(w *bytes.Buffer, s *tracecamv1.Status) {
	line := func(k string, v any) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(w, "%s: %v\n", k, v)
	}
	mapLines := func(k string, m map[string]uint64) {
		if len(m) == 0 {
			line(k, "-")
			return
		}
		for _, name := range slices.Sorted(maps.Keys(m)) {
			line(k+"."+clean(name), m[name])
		}
	}
	line("version", clean(s.GetVersion()))
	line("ready", s.GetReady())
	line("namespace", clean(s.GetNamespace()))
	line("pod", clean(s.GetPod()))
	line("cgroup", clean(s.GetCgroup()))
	line("cgroup_id", s.GetCgroupId())
	probes := make([]string, len(s.GetProbes()))
	for i, p := range s.GetProbes() {
		probes[i] = clean(p)
	}
	line("probes", strings.Join(probes, " "))
	mapLines("events_seen", s.GetEventsSeen())
	mapLines("events_lost", s.GetEventsLost())
	line("events_lost_total", s.GetEventsLostTotal())
	a := s.GetAssembler()
	line("assembler.events", a.GetEvents())
	line("assembler.profiles", a.GetProfiles())
	line("assembler.partial", a.GetPartial())
	line("assembler.dropped_stale", a.GetDroppedStale())
	line("assembler.dropped_conns", a.GetDroppedConns())
	line("assembler.dropped_segments", a.GetDroppedSegments())
	line("assembler.parse_errors", a.GetParseErrors())
	line("assembler.incomplete", a.GetIncomplete())
	line("assembler.decode_errors", a.GetDecodeErrors())
	line("assembler.cross_thread", a.GetCrossThread())
	line("assembler.trace_ids_generated", a.GetTraceIdsGenerated())
	line("assembler.dns_queries", a.GetDnsQueries())
	line("assembler.threads_active", a.GetThreadsActive())
	line("assembler.conns_active", a.GetConnsActive())
	line("profiles_stored", s.GetProfilesStored())
	line("store_capacity", s.GetStoreCapacity())
	for _, t := range s.GetStores() {
		n := "store." + clean(t.GetName())
		line(n+".profiles", t.GetProfiles())
		line(n+".capacity", t.GetCapacity())
		line(n+".reaches_back", time.Duration(t.GetReachesBackSeconds()*float64(time.Second)).Round(time.Second).String())
		line(n+".evicted", t.GetEvicted())
	}
	line("output_errors", s.GetOutputErrors())
	line("redis", clean(s.GetRedis()))
	line("segment_threshold", clean(s.GetSegmentThreshold()))
}

func writeBaselines(w *bytes.Buffer, r *tracecamv1.ListBaselinesResponse) {
	if len(r.GetBaselines()) == 0 {
		w.WriteString("no baselines\n")
		return
	}
	fmt.Fprintf(w, "baselines over the last %s (medians; judged from %d requests on)\n", orDash(clean(r.GetWindow())), r.GetMinSamples())
	width := 0
	for _, b := range r.GetBaselines() {
		width = max(width, len(clean(b.GetMethod()))+1+len(clean(b.GetRoute())))
	}
	for _, b := range r.GetBaselines() {
		name := clean(b.GetMethod()) + " " + clean(b.GetRoute())
		n := profile.Plural(int(b.GetSamples()), "request", "requests")
		if !b.GetWarm() {
			n += ", warming up"
		}
		line := fmt.Sprintf("%-*s  %s  median %s  p90 %s", width, name, n,
			profile.FormatDuration(b.GetDurationNs()), profile.FormatDuration(b.GetDurationP90Ns()))
		bd := make(map[profile.Category]int64, len(b.GetBreakdown()))
		for c, ns := range b.GetBreakdown() {
			bd[profile.Category(clean(c))] = ns
		}
		if parts := render.TopCategories(bd, 4); parts != "" {
			line += "  " + parts
		}
		if b.GetDnsNs() > 0 {
			line += "  (dns " + profile.FormatDuration(b.GetDnsNs()) + ")"
		}
		w.WriteString(line + "\n")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean escapes what would let a string from the wire move the cursor,
// recolour or retitle the reader's terminal, or break a one-line answer.
func clean(s string) string {
	if !strings.ContainsFunc(s, hidden) && strings.ToValidUTF8(s, "") == s {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if hidden(r) {
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func hidden(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

// Unmarshal implements runtime.Marshaler.
func (TextMarshaler) Unmarshal(data []byte, v any) error { return JSONMarshaler{}.Unmarshal(data, v) }

// NewDecoder implements runtime.Marshaler.
func (TextMarshaler) NewDecoder(r io.Reader) runtime.Decoder { return JSONMarshaler{}.NewDecoder(r) }

// NewEncoder implements runtime.Marshaler.
func (t TextMarshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := t.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}
