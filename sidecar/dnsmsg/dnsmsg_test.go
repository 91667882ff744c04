package dnsmsg

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// encName encodes a dotted name as uncompressed wire labels.
func encName(name string) []byte {
	var b []byte
	for l := range strings.SplitSeq(strings.TrimSuffix(name, "."), ".") {
		if l == "" {
			continue
		}
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func ptr(off int) []byte { return []byte{0xc0 | byte(off>>8), byte(off)} }

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func header(id, flags uint16, qd, an int) []byte {
	return cat(u16(id), u16(flags), u16(uint16(qd)), u16(uint16(an)), u16(0), u16(0))
}

func rr(name []byte, typ uint16, ttl uint32, rdata []byte) []byte {
	return cat(name, u16(typ), u16(1), u32(ttl), u16(uint16(len(rdata))), rdata)
}

// The question name sits right after the header, so pointers to it use 12.
const qOff = 12

var (
	query = cat(header(0xbeef, 0x0100, 1, 0), encName("api.example.com"), u16(TypeA), u16(1))

	// www.example.com CNAME edge.example.net; edge.example.net A 192.0.2.1.
	// The CNAME target's "example.net" is written once; the A record owner
	// points back into the CNAME RDATA (a pointer into a pointer chain).
	cnameRData = cat([]byte{4}, []byte("edge"), encName("example.net"))
	cnameOff   = qOff + len(encName("www.example.com")) + 4 + 2 + 10
	response   = cat(
		header(0x1234, 0x8180, 1, 3),
		encName("www.example.com"), u16(TypeA), u16(1),
		rr(ptr(qOff), TypeCNAME, 300, cnameRData),
		rr(ptr(cnameOff), TypeA, 60, []byte{192, 0, 2, 1}),
		rr(ptr(cnameOff), TypeAAAA, 60, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}),
	)
	respQuestion = []Question{{Name: "www.example.com", Type: TypeA, Class: 1}}
	respAnswers  = []Answer{
		{Name: "www.example.com", Type: TypeCNAME, TTL: 300, Data: "edge.example.net"},
		{Name: "edge.example.net", Type: TypeA, TTL: 60, Data: "192.0.2.1"},
		{Name: "edge.example.net", Type: TypeAAAA, TTL: 60, Data: "2001:db8::1"},
	}
)

func TestParse(t *testing.T) {
	lastRR := len(response) - len(rr(ptr(0), TypeAAAA, 0, make([]byte, 16)))
	tests := []struct {
		name    string
		in      []byte
		want    Message
		wantErr error
	}{
		{
			name: "query",
			in:   query,
			want: Message{ID: 0xbeef, Questions: []Question{{Name: "api.example.com", Type: TypeA, Class: 1}}},
		},
		{
			name: "response with compression",
			in:   response,
			want: Message{ID: 0x1234, Response: true, AnswerCount: 3, Questions: respQuestion, Answers: respAnswers},
		},
		{
			name: "response cut inside last rdata keeps record header",
			in:   response[:len(response)-3],
			want: Message{ID: 0x1234, Response: true, AnswerCount: 3, Questions: respQuestion,
				Answers: append(respAnswers[:2:2], Answer{Name: "edge.example.net", Type: TypeAAAA, TTL: 60})},
		},
		{
			name: "response cut inside last record header",
			in:   response[:lastRR+5],
			want: Message{ID: 0x1234, Response: true, AnswerCount: 3, Questions: respQuestion, Answers: respAnswers[:2]},
		},
		{
			name: "response cut inside last owner pointer",
			in:   response[:lastRR+1],
			want: Message{ID: 0x1234, Response: true, AnswerCount: 3, Questions: respQuestion, Answers: respAnswers[:2]},
		},
		{
			name: "cut inside question name",
			in:   query[:18],
			want: Message{ID: 0xbeef},
		},
		{
			name: "cut inside question type",
			in:   query[:len(query)-1],
			want: Message{ID: 0xbeef},
		},
		{
			name: "header only, counts claim more",
			in:   header(7, 0x8183, 5, 9),
			want: Message{ID: 7, Response: true, Rcode: RcodeNXDomain, AnswerCount: 9},
		},
		{
			name: "flags",
			in:   header(1, 0x8000|2<<11|0x0200|RcodeRefused, 0, 0),
			want: Message{ID: 1, Response: true, Opcode: 2, Truncated: true, Rcode: RcodeRefused},
		},
		{
			name: "root name and odd label bytes",
			in: cat(header(2, 0, 2, 0), []byte{0}, u16(TypeANY), u16(1),
				[]byte{5, 'a', '.', 'b', '\\', 0x01, 0}, u16(TypeTXT), u16(1)),
			want: Message{ID: 2, Questions: []Question{{".", TypeANY, 1}, {`a\.b\\\001`, TypeTXT, 1}}},
		},
		{
			name: "forward pointer past capture is truncation",
			in:   cat(header(3, 0, 1, 0), ptr(0x3fff), u16(TypeA), u16(1)),
			want: Message{ID: 3},
		},
		{
			name: "MX answer has empty data",
			in: cat(header(4, 0x8000, 1, 1), encName("example.com"), u16(TypeMX), u16(1),
				rr(ptr(qOff), TypeMX, 10, cat(u16(10), encName("mx.example.com")))),
			want: Message{ID: 4, Response: true, AnswerCount: 1,
				Questions: []Question{{"example.com", TypeMX, 1}},
				Answers:   []Answer{{Name: "example.com", Type: TypeMX, TTL: 10}}},
		},
		{
			name:    "short header",
			in:      query[:11],
			wantErr: ErrTruncated,
		},
		{name: "empty", in: nil, wantErr: ErrTruncated},
		{
			name:    "self pointer loop",
			in:      cat(header(5, 0, 1, 0), ptr(qOff), u16(TypeA), u16(1)),
			want:    Message{ID: 5},
			wantErr: ErrMalformed,
		},
		{
			name:    "two-pointer loop",
			in:      cat(header(5, 0, 1, 0), ptr(qOff+2), ptr(qOff), u16(TypeA), u16(1)),
			want:    Message{ID: 5},
			wantErr: ErrMalformed,
		},
		{
			name:    "label and pointer loop grows name",
			in:      cat(header(5, 0, 1, 0), []byte{1, 'a'}, ptr(qOff)),
			want:    Message{ID: 5},
			wantErr: ErrMalformed,
		},
		{
			name:    "label longer than 63",
			in:      cat(header(6, 0, 1, 0), []byte{64}, make([]byte, 64), []byte{0}, u16(TypeA), u16(1)),
			want:    Message{ID: 6},
			wantErr: ErrMalformed,
		},
		{
			name:    "name longer than 255",
			in:      cat(header(6, 0, 1, 0), encName(strings.Repeat(strings.Repeat("x", 63)+".", 4)), u16(TypeA), u16(1)),
			want:    Message{ID: 6},
			wantErr: ErrMalformed,
		},
		{
			name: "bad A length keeps earlier sections",
			in: cat(header(8, 0x8000, 1, 1), encName("a.test"), u16(TypeA), u16(1),
				rr(ptr(qOff), TypeA, 1, []byte{1, 2, 3})),
			want:    Message{ID: 8, Response: true, AnswerCount: 1, Questions: []Question{{"a.test", TypeA, 1}}},
			wantErr: ErrMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// A name of exactly 255 wire bytes is the longest legal one.
func TestParseMaxName(t *testing.T) {
	name := strings.Repeat(strings.Repeat("x", 63)+".", 3) + strings.Repeat("y", 61)
	wire := encName(name)
	if len(wire) != 255 {
		t.Fatalf("test name is %d bytes", len(wire))
	}
	m, err := Parse(cat(header(1, 0, 1, 0), wire, u16(TypeA), u16(1)))
	if err != nil || len(m.Questions) != 1 || m.Questions[0].Name != name {
		t.Fatalf("Parse = %+v, %v", m, err)
	}
}

func TestParseTCP(t *testing.T) {
	framed := cat(u16(uint16(len(response))), response)
	tests := []struct {
		name     string
		in       []byte
		answers  int
		wantErr  error
		question bool
	}{
		{name: "whole", in: framed, answers: 3, question: true},
		{name: "followed by next message", in: cat(framed, u16(uint16(len(query))), query), answers: 3, question: true},
		{name: "capture prefix", in: framed[:2+12+17+4+3], answers: 0, question: true},
		{name: "length prefix only", in: framed[:2], wantErr: ErrTruncated},
		{name: "one byte", in: framed[:1], wantErr: ErrTruncated},
		{name: "length shorter than header", in: cat(u16(4), response), wantErr: ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseTCP(tt.in)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if m.ID != 0x1234 || len(m.Answers) != tt.answers || (len(m.Questions) == 1) != tt.question {
				t.Errorf("got %+v", m)
			}
		})
	}
}

func TestTypeString(t *testing.T) {
	tests := map[uint16]string{
		1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
		28: "AAAA", 33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY", 0: "TYPE0", 41: "TYPE41", 65535: "TYPE65535",
	}
	for in, want := range tests {
		if got := TypeString(in); got != want {
			t.Errorf("TypeString(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestRcodeString(t *testing.T) {
	tests := map[int]string{
		0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "RCODE6", -1: "RCODE-1",
	}
	for in, want := range tests {
		if got := RcodeString(in); got != want {
			t.Errorf("RcodeString(%d) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(query)
	f.Add(response)
	f.Add(response[:len(response)-3])
	f.Add(cat(header(5, 0, 1, 0), ptr(qOff), u16(TypeA), u16(1)))
	f.Add(cat(header(5, 0, 1, 0), []byte{1, 'a'}, ptr(qOff)))
	f.Add(cat(header(6, 0, 1, 0), []byte{64}, make([]byte, 64), []byte{0}))
	f.Add(header(0xffff, 0xffff, 0xffff, 0xffff))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error class: %v", err)
		}
		if len(m.Answers) > m.AnswerCount {
			t.Fatalf("%d answers but ANCOUNT %d", len(m.Answers), m.AnswerCount)
		}
		// Every byte sequence is also a possible TCP segment.
		_, _ = ParseTCP(b)
		// A shorter capture of a good message must not turn into an error:
		// truncation is the normal case.
		if err == nil && len(b) >= headerLen {
			for n := headerLen; n < len(b); n++ {
				if _, err := Parse(b[:n]); err != nil {
					t.Fatalf("prefix %d of valid message failed: %v", n, err)
				}
			}
		}
	})
}
