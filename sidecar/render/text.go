package render

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tracecam/tracecam/sidecar/diagnose"
	"github.com/tracecam/tracecam/sidecar/profile"
)

// TextOptions tunes the camera view.
type TextOptions struct {
	// Color adds ANSI colours. It is off by default because the view is as
	// often piped to a file or a log as it is shown on a terminal.
	Color bool
	// Evidence prints the diagnosis evidence under the cause line.
	Evidence bool
	// MaxTimeline caps the timeline rows; 0 means DefaultMaxTimeline and a
	// negative value means no cap.
	MaxTimeline int
}

// DefaultMaxTimeline keeps a request that blocked thousands of times
// readable; the remaining waits are summarised in one line.
const DefaultMaxTimeline = 30

// barWidth is the length of a 100% bar: wide enough to tell 5% steps apart,
// narrow enough to fit an 80-column terminal next to the numbers.
const barWidth = 40

var errNilProfile = errors.New("render: nil profile")

const (
	ansiReset = "\x1b[0m"
	ansiBold  = "\x1b[1m"
	ansiDim   = "\x1b[2m"
	ansiRed   = "\x1b[1;31m"
	ansiAmber = "\x1b[1;33m"
	ansiCyan  = "\x1b[36m"
)

// Text writes the camera view of p without colours.
func Text(w io.Writer, p *profile.Profile) error {
	return TextWith(w, p, TextOptions{})
}

// TextWith writes the camera view of p. When p carries no diagnosis yet one
// is computed for display, so a profile rendered before the pipeline
// diagnosed it still says why it was slow; p itself is not changed.
func TextWith(w io.Writer, p *profile.Profile, opts TextOptions) error {
	if p == nil {
		return errNilProfile
	}
	t := &textView{opts: opts}
	t.header(p)
	t.cause(p)
	t.typical(p)
	t.breakdown(p)
	t.timeline(p)
	t.dns(p)
	t.network(p)
	t.tcp(p)
	_, err := w.Write(t.buf.Bytes())
	return err
}

type textView struct {
	buf  bytes.Buffer
	opts TextOptions
}

func (t *textView) paint(code, s string) string {
	if !t.opts.Color || s == "" {
		return s
	}
	return code + s + ansiReset
}

func (t *textView) line(indent int, s string) {
	t.buf.WriteString(strings.Repeat(" ", indent))
	t.buf.WriteString(strings.TrimRight(s, " "))
	t.buf.WriteByte('\n')
}

func (t *textView) section(title string) {
	t.line(3, t.paint(ansiDim, title))
}

func (t *textView) header(p *profile.Profile) {
	parts := []string{
		fmt.Sprintf("%s %s", orDash(p.Method), orDash(p.Path)),
		status(p.StatusCode),
		profile.FormatDuration(p.DurationNS),
	}
	if p.TraceID != "" {
		tr := "trace " + clean(p.TraceID)
		switch {
		case p.TraceIDGenerated:
			tr += " (generated)"
		case p.TraceSource != "":
			tr += " (" + clean(p.TraceSource) + ")"
		}
		parts = append(parts, tr)
	}
	t.line(0, t.paint(ansiBold, "━━ "+strings.Join(parts, "  ")))

	var who []string
	if p.Pod != "" {
		pod := clean(p.Pod)
		if p.Namespace != "" {
			pod = clean(p.Namespace) + "/" + pod
		}
		who = append(who, "pod "+pod)
	}
	if p.Container != "" {
		who = append(who, "container "+clean(p.Container))
	}
	if p.PID != 0 || p.TID != 0 {
		ids := fmt.Sprintf("pid %d tid %d", p.PID, p.TID)
		if p.ThreadName != "" {
			ids += " (" + clean(p.ThreadName) + ")"
		}
		if p.GoroutineID != 0 {
			ids += fmt.Sprintf(" goroutine %d", p.GoroutineID)
		}
		if p.Accounting != "" {
			// How the breakdown was measured: a thread's exact counters,
			// an event loop's time cut per request, a goroutine, or an
			// estimate.
			ids += " · " + clean(string(p.Accounting))
		}
		who = append(who, ids)
	}
	if p.Client != "" {
		who = append(who, "client "+clean(p.Client))
	}
	if !p.StartTime.IsZero() {
		// UTC with milliseconds: the view is compared against logs from
		// other pods and nodes, which only works in one time zone.
		who = append(who, p.StartTime.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	if p.Partial {
		note := "[partial]"
		if p.PartialReason != "" {
			note = "[partial: " + clean(p.PartialReason) + "]"
		}
		who = append(who, t.paint(ansiAmber, note))
	}
	if len(who) > 0 {
		t.line(3, strings.Join(who, "  "))
	}
}

func (t *textView) cause(p *profile.Profile) {
	d := p.Diagnosis
	if d.Cause == "" {
		d = diagnose.Diagnose(p)
	}
	code := ansiRed
	if d.Cause == profile.CauseUnknown {
		code = ansiAmber
	}
	s := "cause  " + t.paint(code, clean(string(d.Cause)))
	if d.Summary != "" {
		s += " — " + clean(d.Summary)
	}
	t.line(3, s)
	if t.opts.Evidence {
		for _, e := range d.Evidence {
			t.line(10, "· "+clean(e))
		}
	}
}

func (t *textView) breakdown(p *profile.Profile) {
	t.section("breakdown")
	var total int64
	for _, ns := range p.Breakdown {
		if ns > 0 {
			total += ns
		}
	}
	if total == 0 {
		t.line(5, "(empty)")
		return
	}
	denom := max(p.DurationNS, total)
	for _, c := range orderedCategories(p.Breakdown) {
		ns := p.Breakdown[c]
		if ns <= 0 {
			continue
		}
		n := int(math.Round(float64(ns) / float64(denom) * barWidth))
		bar := t.paint(ansiCyan, strings.Repeat("█", n))
		l := fmt.Sprintf("%-6s%10s %4s  %s", clean(string(c)), profile.FormatDuration(ns), profile.FormatPercent(ns, denom), bar)
		if c == profile.Runq && p.StealNS > 0 {
			l += fmt.Sprintf("  (%s of it hypervisor steal)", profile.FormatDuration(p.StealNS))
		}
		t.line(5, l)
	}
}

// typical puts the endpoint's baseline under the cause: what the request is
// compared with.
func (t *textView) typical(p *profile.Profile) {
	b := p.Baseline
	if b == nil {
		return
	}
	name := clean(strings.TrimSpace(b.Method + " " + b.Route))
	if !b.Warm {
		t.line(3, fmt.Sprintf("typical  not known yet: %s has %d of the %d requests a baseline needs", name, b.Samples, profile.BaselineMinSamples))
		return
	}
	s := fmt.Sprintf("typical  %s (p90 %s) for %s over %s", profile.FormatDuration(b.DurationNS), profile.FormatDuration(b.DurationP90NS),
		name, profile.Plural(int(b.Samples), "request", "requests"))
	if parts := TopCategories(b.Breakdown, 4); parts != "" {
		s += ": " + parts
	}
	t.line(3, s)
}

// TopCategories lists the n largest entries of a breakdown ("sleep 20.1
// ms, cpu 1.2 ms"), largest first, ties in display order.
func TopCategories(b map[profile.Category]int64, n int) string {
	cats := orderedCategories(b)
	slices.SortStableFunc(cats, func(x, y profile.Category) int { return cmp.Compare(b[y], b[x]) })
	var parts []string
	for _, c := range cats {
		if len(parts) == n || b[c] <= 0 {
			break
		}
		parts = append(parts, clean(string(c))+" "+profile.FormatDuration(b[c]))
	}
	return strings.Join(parts, ", ")
}

// orderedCategories lists the contract's categories in display order, then
// any others sorted, so a newer producer's category is shown, not dropped.
func orderedCategories(b map[profile.Category]int64) []profile.Category {
	out := slices.Clone(profile.Categories)
	var extra []profile.Category
	for c := range b {
		if !slices.Contains(profile.Categories, c) {
			extra = append(extra, c)
		}
	}
	slices.Sort(extra)
	return append(out, extra...)
}

func (t *textView) timeline(p *profile.Profile) {
	if len(p.Timeline) == 0 {
		return
	}
	t.section("timeline (waits ≥ threshold)")
	segs := slices.Clone(p.Timeline)
	slices.SortStableFunc(segs, func(a, b profile.Segment) int { return cmp.Compare(a.StartOffsetNS, b.StartOffsetNS) })
	limit := t.opts.MaxTimeline
	if limit == 0 {
		limit = DefaultMaxTimeline
	}
	if limit < 0 || limit > len(segs) {
		limit = len(segs)
	}
	for _, s := range segs[:limit] {
		row := fmt.Sprintf("%-9s %-6s%9s", "+"+profile.FormatDuration(s.StartOffsetNS), clean(string(s.Category)), profile.FormatDuration(s.DurationNS))
		if d := segDetail(s); d != "" {
			row += "  " + d
		}
		t.line(5, row)
	}
	if rest := segs[limit:]; len(rest) > 0 {
		var ns int64
		for _, s := range rest {
			ns += s.DurationNS
		}
		t.line(5, fmt.Sprintf("… %d more waits (%s)", len(rest), profile.FormatDuration(ns)))
	}
}

// segDetail says what the wait was on, in the order a reader needs it to
// find the code: the syscall, the object, the size, who ended the wait.
func segDetail(s profile.Segment) string {
	var parts []string
	if s.Syscall != "" {
		sc := clean(s.Syscall)
		if s.Count > 1 {
			sc += fmt.Sprintf(" ×%d", s.Count)
		}
		parts = append(parts, sc)
	} else if s.Count > 1 {
		parts = append(parts, fmt.Sprintf("×%d", s.Count))
	}
	target := s.Peer
	if target == "" {
		target = s.File
	}
	switch {
	case s.FDKind != "" && target != "":
		parts = append(parts, clean(s.FDKind)+" "+clean(target))
	case s.FDKind != "":
		parts = append(parts, clean(s.FDKind))
	case target != "":
		parts = append(parts, clean(target))
	}
	if s.Bytes > 0 {
		parts = append(parts, profile.FormatBytes(s.Bytes))
	}
	if s.WakerTID != 0 {
		wk := fmt.Sprintf("woken by tid %d", s.WakerTID)
		if s.WakerName != "" {
			wk += " (" + clean(s.WakerName) + ")"
		}
		parts = append(parts, wk)
	}
	if s.RunqNS > 0 {
		parts = append(parts, "then "+profile.FormatDuration(s.RunqNS)+" runq")
	}
	if s.Detail != "" {
		parts = append(parts, clean(s.Detail))
	}
	return strings.Join(parts, "  ")
}

func (t *textView) dns(p *profile.Profile) {
	if len(p.DNS) == 0 {
		return
	}
	t.section("dns")
	qs := slices.Clone(p.DNS)
	slices.SortStableFunc(qs, func(a, b profile.DNSQuery) int { return cmp.Compare(a.StartOffsetNS, b.StartOffsetNS) })
	for _, q := range qs {
		name := clean(q.Name)
		if q.Type != "" {
			name += " " + clean(q.Type)
		}
		rcode := clean(q.Rcode)
		switch {
		case !q.Answered:
			// An unanswered query is the classic 5 s resolver timeout; it
			// must not read like a success with an empty rcode.
			rcode = "unanswered"
		case rcode == "":
			rcode = "answered"
		}
		row := fmt.Sprintf("%-9s %s  %s  %s", "+"+profile.FormatDuration(q.StartOffsetNS), name, rcode, profile.FormatDuration(q.LatencyNS))
		if q.Server != "" {
			row += "  via " + clean(q.Server)
		}
		if q.Attempt > 1 {
			row += fmt.Sprintf("  (try %d)", q.Attempt)
		}
		t.line(5, row)
	}
}

func (t *textView) network(p *profile.Profile) {
	if len(p.Network) == 0 {
		return
	}
	t.section("network")
	peers := slices.Clone(p.Network)
	// The peer that cost the most time is the one the reader is after.
	slices.SortStableFunc(peers, func(a, b profile.NetworkPeer) int { return cmp.Compare(b.WaitNS, a.WaitNS) })
	width := 0
	for _, n := range peers {
		width = max(width, utf8.RuneCountInString(clean(n.Peer)))
	}
	for _, n := range peers {
		row := fmt.Sprintf("%-*s", width, clean(n.Peer))
		if n.Protocol != "" {
			row += " " + clean(n.Protocol)
		}
		row += fmt.Sprintf("  sent %s  recv %s  waited %s  %s",
			profile.FormatBytes(n.BytesSent), profile.FormatBytes(n.BytesReceived), profile.FormatDuration(n.WaitNS), profile.Plural(n.Calls, "call", "calls"))
		t.line(5, row)
	}
}

// clean escapes control characters and invalid UTF-8, because these strings
// come from the traced process and the network and go to a terminal. Format
// characters (bidi overrides, zero-width marks) are escaped too: they can
// make a path display as something it is not.
func clean(s string) string {
	ok := true
	for _, r := range s {
		if r == utf8.RuneError || hidden(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x100 && hidden(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case hidden(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

func hidden(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

func status(code int) string {
	if code == 0 {
		return "-"
	}
	return fmt.Sprint(code)
}

// tcp shows what held the response back on the client connection, only
// when something did: a window that never limited sending is noise.
func (t *textView) tcp(p *profile.Profile) {
	if p.TCP == nil || (p.TCP.WindowLimitedNS == 0 && p.TCP.DeliveryNS < 1_000_000) {
		return
	}
	t.section("tcp")
	if p.TCP.DeliveryNS > 0 {
		t.line(5, fmt.Sprintf("response delivered %s after the last write (acknowledged by the client)", profile.FormatDuration(p.TCP.DeliveryNS)))
	}
	t.line(5, fmt.Sprintf("held back by the client's receive window %s; window min %s, last %s",
		profile.FormatDuration(p.TCP.WindowLimitedNS), profile.FormatBytes(p.TCP.PeerWindowMinBytes), profile.FormatBytes(p.TCP.PeerWindowBytes)))
}
