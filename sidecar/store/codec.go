package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// The stored form of a profile: every field but the diagnosis (a pure
// function of the rest, computed again when the profile is read) in a
// compact binary encoding, so that a stored profile is one pointer-free
// byte string the garbage collector never scans and an Go object graph of
// strings and maps (~1.5 KiB) shrinks to ~150-250 bytes.
//
// Layout: a version byte, then the fields in a fixed order as uvarints,
// zig-zag varints and length-prefixed strings; optional parts behind a
// flags word. A record that does not decode gives an error, never a panic.

const codecVersion = 1

// flags of the optional parts of a record.
const (
	hasBaseline = 1 << iota
	hasTCP
	traceGenerated
	partial
)

// categoryCode numbers the categories for the encoding: their index in
// profile.Categories, which is part of the stored form (append only). A
// switch, not a map: it runs for every category of every request.
func categoryCode(c profile.Category) (byte, bool) {
	switch c {
	case profile.CPU:
		return 0, true
	case profile.Runq:
		return 1, true
	case profile.Net:
		return 2, true
	case profile.File:
		return 3, true
	case profile.Lock:
		return 4, true
	case profile.Epoll:
		return 5, true
	case profile.Sleep:
		return 6, true
	case profile.Queue:
		return 7, true
	case profile.Loop:
		return 8, true
	case profile.GC:
		return 9, true
	case profile.Other:
		return 10, true
	}
	return 0, false
}

// encode appends p's stored form to b.
func encode(b []byte, p *profile.Profile) []byte {
	b = append(b, codecVersion)
	var fl uint64
	if p.Baseline != nil {
		fl |= hasBaseline
	}
	if p.TCP != nil {
		fl |= hasTCP
	}
	if p.TraceIDGenerated {
		fl |= traceGenerated
	}
	if p.Partial {
		fl |= partial
	}
	b = binary.AppendUvarint(b, fl)
	// Path first: a list filter reads it without decoding the rest.
	b = appendString(b, p.Path)
	b = appendString(b, p.TraceID)
	b = appendString(b, p.SpanID)
	b = appendString(b, p.ParentSpanID)
	b = appendString(b, p.TraceSource)
	b = appendString(b, p.Pod)
	b = appendString(b, p.Namespace)
	b = appendString(b, p.Container)
	b = binary.AppendUvarint(b, uint64(p.PID))
	b = binary.AppendUvarint(b, uint64(p.TID))
	b = appendString(b, p.ThreadName)
	b = appendString(b, p.Method)
	b = appendString(b, p.Host)
	b = binary.AppendVarint(b, int64(p.StatusCode))
	b = appendString(b, p.Client)
	b = appendString(b, p.Server)
	b = binary.AppendVarint(b, p.StartTime.UnixNano())
	b = binary.AppendVarint(b, p.DurationNS)
	b = binary.AppendVarint(b, p.RequestBytes)
	b = binary.AppendVarint(b, p.ResponseBytes)
	b = appendBreakdown(b, p.Breakdown)
	b = binary.AppendUvarint(b, uint64(len(p.Timeline)))
	for i := range p.Timeline {
		s := &p.Timeline[i]
		b = appendCategory(b, s.Category)
		b = binary.AppendVarint(b, s.StartOffsetNS)
		b = binary.AppendVarint(b, s.DurationNS)
		b = binary.AppendVarint(b, s.RunqNS)
		b = binary.AppendVarint(b, int64(s.Count))
		b = appendString(b, s.Syscall)
		b = appendString(b, s.FDKind)
		b = binary.AppendVarint(b, int64(s.FD))
		b = appendString(b, s.Peer)
		b = appendString(b, s.File)
		b = binary.AppendVarint(b, s.Bytes)
		b = binary.AppendUvarint(b, uint64(s.WakerTID))
		b = appendString(b, s.WakerName)
		b = appendString(b, s.Detail)
		b = appendString(b, s.HolderTraceID)
	}
	b = binary.AppendUvarint(b, uint64(len(p.DNS)))
	for _, q := range p.DNS {
		b = appendString(b, q.Name)
		b = appendString(b, q.Type)
		b = appendString(b, q.Rcode)
		b = appendString(b, q.Server)
		b = binary.AppendVarint(b, q.StartOffsetNS)
		b = binary.AppendVarint(b, q.LatencyNS)
		b = appendBool(b, q.Answered)
		b = binary.AppendVarint(b, int64(q.Attempt))
	}
	b = binary.AppendUvarint(b, uint64(len(p.Network)))
	for _, n := range p.Network {
		b = appendString(b, n.Peer)
		b = appendString(b, n.Protocol)
		b = binary.AppendVarint(b, n.BytesSent)
		b = binary.AppendVarint(b, n.BytesReceived)
		b = binary.AppendVarint(b, n.WaitNS)
		b = binary.AppendVarint(b, n.StartOffsetNS)
		b = binary.AppendVarint(b, int64(n.Calls))
	}
	b = appendString(b, p.PartialReason)
	if bl := p.Baseline; bl != nil {
		b = appendString(b, bl.Method)
		b = appendString(b, bl.Route)
		b = binary.AppendVarint(b, bl.Samples)
		b = appendBool(b, bl.Warm)
		b = binary.AppendVarint(b, bl.DurationNS)
		b = binary.AppendVarint(b, bl.DurationP90NS)
		b = appendBreakdown(b, bl.Breakdown)
		b = binary.AppendVarint(b, bl.DNSNS)
	}
	if t := p.TCP; t != nil {
		b = binary.AppendVarint(b, t.WindowLimitedNS)
		b = binary.AppendVarint(b, t.PeerWindowMinBytes)
		b = binary.AppendVarint(b, t.PeerWindowBytes)
		b = binary.AppendVarint(b, t.DeliveryNS)
	}
	b = binary.AppendVarint(b, p.StealNS)
	b = appendString(b, string(p.Accounting))
	b = binary.AppendUvarint(b, p.GoroutineID)
	return b
}

// appendBreakdown writes the non-zero categories as (code, ns) pairs in
// one pass over the map (categories the encoding does not know by name);
// the count goes first, patched in once known (a map of up to 127 entries
// takes one byte, which covers every profile: a larger map is written in
// two passes).
func appendBreakdown(b []byte, m map[profile.Category]int64) []byte {
	if len(m) > 127 {
		n := 0
		for _, v := range m {
			if v != 0 {
				n++
			}
		}
		b = binary.AppendUvarint(b, uint64(n))
		for c, v := range m {
			if v != 0 {
				b = appendCategory(b, c)
				b = binary.AppendVarint(b, v)
			}
		}
		return b
	}
	at := len(b)
	b = append(b, 0)
	n := byte(0)
	for c, v := range m {
		if v != 0 {
			b = appendCategory(b, c)
			b = binary.AppendVarint(b, v)
			n++
		}
	}
	b[at] = n
	return b
}

// appendCategory writes a category's code, or 0xff and its name.
func appendCategory(b []byte, c profile.Category) []byte {
	if code, ok := categoryCode(c); ok {
		return append(b, code)
	}
	b = append(b, 0xff)
	return appendString(b, string(c))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// errCorrupt: a stored record that does not decode (a bug, never input).
var errCorrupt = errors.New("store: corrupt record")

// decoder reads a record; the first error sticks and every later read
// returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) bool() bool { return d.byte1() != 0 }

// count reads a slice length, bounded by what the rest of the record
// could hold (each element takes at least one byte).
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) category() profile.Category {
	c := d.byte1()
	if c == 0xff {
		return profile.Category(d.string())
	}
	if int(c) >= len(profile.Categories) {
		d.fail()
		return ""
	}
	return profile.Categories[c]
}

func (d *decoder) breakdown() map[profile.Category]int64 {
	n := d.count()
	m := make(map[profile.Category]int64, n)
	for range n {
		c := d.category()
		m[c] = d.varint()
	}
	return m
}

// recordPath is the path of an encoded record, read without decoding the
// rest (it aliases rec).
func recordPath(rec []byte) ([]byte, bool) {
	d := decoder{b: rec}
	if d.byte1() != codecVersion {
		return nil, false
	}
	d.uvarint()
	p := d.bytes()
	return p, d.err == nil
}

// decode rebuilds a profile from its stored form.
func decode(rec []byte) (*profile.Profile, error) {
	d := decoder{b: rec}
	if v := d.byte1(); v != codecVersion {
		return nil, fmt.Errorf("store: record version %d, want %d", v, codecVersion)
	}
	fl := d.uvarint()
	p := &profile.Profile{}
	p.Path = d.string()
	p.TraceID = d.string()
	p.SpanID = d.string()
	p.ParentSpanID = d.string()
	p.TraceSource = d.string()
	p.Pod = d.string()
	p.Namespace = d.string()
	p.Container = d.string()
	p.PID = uint32(d.uvarint())
	p.TID = uint32(d.uvarint())
	p.ThreadName = d.string()
	p.Method = d.string()
	p.Host = d.string()
	p.StatusCode = int(d.varint())
	p.Client = d.string()
	p.Server = d.string()
	p.StartTime = time.Unix(0, d.varint())
	p.DurationNS = d.varint()
	p.RequestBytes = d.varint()
	p.ResponseBytes = d.varint()
	p.Breakdown = d.breakdown()
	if n := d.count(); n > 0 {
		p.Timeline = make([]profile.Segment, n)
		for i := range p.Timeline {
			s := &p.Timeline[i]
			s.Category = d.category()
			s.StartOffsetNS = d.varint()
			s.DurationNS = d.varint()
			s.RunqNS = d.varint()
			s.Count = int(d.varint())
			s.Syscall = d.string()
			s.FDKind = d.string()
			s.FD = int32(d.varint())
			s.Peer = d.string()
			s.File = d.string()
			s.Bytes = d.varint()
			s.WakerTID = uint32(d.uvarint())
			s.WakerName = d.string()
			s.Detail = d.string()
			s.HolderTraceID = d.string()
		}
	}
	if n := d.count(); n > 0 {
		p.DNS = make([]profile.DNSQuery, n)
		for i := range p.DNS {
			q := &p.DNS[i]
			q.Name, q.Type, q.Rcode, q.Server = d.string(), d.string(), d.string(), d.string()
			q.StartOffsetNS = d.varint()
			q.LatencyNS = d.varint()
			q.Answered = d.bool()
			q.Attempt = int32(d.varint())
		}
	}
	if n := d.count(); n > 0 {
		p.Network = make([]profile.NetworkPeer, n)
		for i := range p.Network {
			nw := &p.Network[i]
			nw.Peer, nw.Protocol = d.string(), d.string()
			nw.BytesSent = d.varint()
			nw.BytesReceived = d.varint()
			nw.WaitNS = d.varint()
			nw.StartOffsetNS = d.varint()
			nw.Calls = int(d.varint())
		}
	}
	p.PartialReason = d.string()
	if fl&hasBaseline != 0 {
		bl := &profile.Baseline{}
		bl.Method, bl.Route = d.string(), d.string()
		bl.Samples = d.varint()
		bl.Warm = d.bool()
		bl.DurationNS = d.varint()
		bl.DurationP90NS = d.varint()
		bl.Breakdown = d.breakdown()
		bl.DNSNS = d.varint()
		p.Baseline = bl
	}
	if fl&hasTCP != 0 {
		p.TCP = &profile.TCPSend{
			WindowLimitedNS: d.varint(), PeerWindowMinBytes: d.varint(),
			PeerWindowBytes: d.varint(), DeliveryNS: d.varint(),
		}
	}
	p.StealNS = d.varint()
	p.Accounting = profile.Accounting(d.string())
	p.GoroutineID = d.uvarint()
	p.TraceIDGenerated = fl&traceGenerated != 0
	p.Partial = fl&partial != 0
	if d.err != nil {
		return nil, d.err
	}
	return p, nil
}
