package dnsmsg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrTruncated means the input is too short to hold even the fixed part
// that identifies a message (the 12-byte header, or the TCP length prefix).
var ErrTruncated = errors.New("dnsmsg: message too short")

// ErrMalformed means the captured bytes contain wire data that is invalid
// in itself; errors wrap it with the specific reason.
var ErrMalformed = errors.New("dnsmsg: malformed message")

// Resource record types that TypeString names.
const (
	TypeA     uint16 = 1
	TypeNS    uint16 = 2
	TypeCNAME uint16 = 5
	TypeSOA   uint16 = 6
	TypePTR   uint16 = 12
	TypeMX    uint16 = 15
	TypeTXT   uint16 = 16
	TypeAAAA  uint16 = 28
	TypeSRV   uint16 = 33
	TypeSVCB  uint16 = 64
	TypeHTTPS uint16 = 65
	TypeANY   uint16 = 255
)

// Response codes that RcodeString names.
const (
	RcodeNoError  = 0
	RcodeFormErr  = 1
	RcodeServFail = 2
	RcodeNXDomain = 3
	RcodeNotImp   = 4
	RcodeRefused  = 5
)

const (
	headerLen = 12
	// maxNameLen is the RFC 1035 limit on a name's wire length.
	maxNameLen = 255
	maxLabel   = 63
	// maxPointers bounds compression jumps per name. A valid name has at
	// most 127 labels, so legitimate messages never need more jumps than
	// that; anything beyond is a loop.
	maxPointers = 127
)

// Message is a decoded DNS message, possibly partial.
type Message struct {
	ID        uint16
	Response  bool
	Opcode    int
	Rcode     int
	Truncated bool // the TC flag: the sender truncated the message, not the capture
	Questions []Question
	// AnswerCount is ANCOUNT from the header, which may exceed len(Answers)
	// when the capture ended inside the answer section.
	AnswerCount int
	Answers     []Answer
}

// Question is one entry of the question section.
type Question struct {
	Name  string
	Type  uint16
	Class uint16
}

// Answer is one resource record of the answer section.
type Answer struct {
	Name string
	Type uint16
	TTL  uint32
	// Data is the address text for A/AAAA, the target name for CNAME, and
	// empty for other types or when the record's RDATA was cut off by the
	// end of the capture (only possible for the last Answer).
	Data string
}

// Parse decodes a DNS message from a UDP payload or a captured prefix of
// one. Only the 12-byte header is required. Questions and answers are
// decoded until their count is reached or the input ends; running out of
// input is not an error. On error the returned Message still holds
// everything decoded before the fault.
func Parse(b []byte) (Message, error) {
	if len(b) < headerLen {
		return Message{}, fmt.Errorf("%w: %d bytes, need %d for the header", ErrTruncated, len(b), headerLen)
	}
	flags := binary.BigEndian.Uint16(b[2:])
	m := Message{
		ID:          binary.BigEndian.Uint16(b),
		Response:    flags&0x8000 != 0,
		Opcode:      int(flags>>11) & 0xf,
		Truncated:   flags&0x0200 != 0,
		Rcode:       int(flags & 0xf),
		AnswerCount: int(binary.BigEndian.Uint16(b[6:])),
	}
	qdcount := int(binary.BigEndian.Uint16(b[4:]))

	off := headerLen
	for i := 0; i < qdcount; i++ {
		name, n, err := readName(b, off)
		if err != nil {
			return m, fmt.Errorf("question %d: %w", i, err)
		}
		if n < 0 || n+4 > len(b) {
			return m, nil
		}
		m.Questions = append(m.Questions, Question{
			Name:  name,
			Type:  binary.BigEndian.Uint16(b[n:]),
			Class: binary.BigEndian.Uint16(b[n+2:]),
		})
		off = n + 4
	}

	for i := 0; i < m.AnswerCount; i++ {
		name, n, err := readName(b, off)
		if err != nil {
			return m, fmt.Errorf("answer %d: %w", i, err)
		}
		// TYPE, CLASS, TTL, RDLENGTH.
		if n < 0 || n+10 > len(b) {
			return m, nil
		}
		a := Answer{
			Name: name,
			Type: binary.BigEndian.Uint16(b[n:]),
			TTL:  binary.BigEndian.Uint32(b[n+4:]),
		}
		rdlen := int(binary.BigEndian.Uint16(b[n+8:]))
		rdata := n + 10
		if rdata+rdlen > len(b) {
			// Keep what the record header told us; the data is cut off.
			m.Answers = append(m.Answers, a)
			return m, nil
		}
		if err := decodeRData(b, rdata, rdlen, &a); err != nil {
			return m, fmt.Errorf("answer %d (%s): %w", i, TypeString(a.Type), err)
		}
		m.Answers = append(m.Answers, a)
		off = rdata + rdlen
	}
	return m, nil
}

// ParseTCP decodes a DNS message carried over TCP, which is preceded by a
// two-byte length. Bytes beyond that length (a following message) are
// ignored; fewer bytes than it announces are treated as a capture prefix.
func ParseTCP(b []byte) (Message, error) {
	if len(b) < 2 {
		return Message{}, fmt.Errorf("%w: %d bytes, need 2 for the TCP length prefix", ErrTruncated, len(b))
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n < len(b) {
		b = b[:n]
	}
	m, err := Parse(b)
	if err != nil {
		return m, fmt.Errorf("tcp: %w", err)
	}
	return m, nil
}

func decodeRData(b []byte, off, n int, a *Answer) error {
	switch a.Type {
	case TypeA, TypeAAAA:
		want := 4
		if a.Type == TypeAAAA {
			want = 16
		}
		if n != want {
			return fmt.Errorf("%w: address length %d, want %d", ErrMalformed, n, want)
		}
		addr, _ := netip.AddrFromSlice(b[off : off+n])
		a.Data = addr.String()
	case TypeCNAME:
		// The target may point anywhere earlier in the message, so it is
		// read from the whole buffer, not just the RDATA slice.
		name, end, err := readName(b, off)
		if err != nil {
			return err
		}
		if end >= 0 && end <= off+n {
			a.Data = name
		}
	}
	return nil
}

// readName decodes the possibly compressed domain name starting at off. It
// returns the presentation form and the offset just past the name's bytes at
// off (after the first pointer, if any). end is -1, with no error, when the
// name runs past the end of b: for a capture prefix that is expected.
func readName(b []byte, off int) (name string, end int, err error) {
	var sb strings.Builder
	end = -1
	wireLen := 0
	jumps := 0
	for {
		if off >= len(b) {
			return "", -1, nil
		}
		c := int(b[off])
		switch c & 0xc0 {
		case 0x00:
			if c == 0 {
				if end < 0 {
					end = off + 1
				}
				if sb.Len() == 0 {
					return ".", end, nil
				}
				return sb.String(), end, nil
			}
			// c <= 63 here because the top bits are clear.
			if off+1+c > len(b) {
				return "", -1, nil
			}
			wireLen += 1 + c
			if wireLen+1 > maxNameLen {
				return "", -1, fmt.Errorf("%w: name longer than %d bytes", ErrMalformed, maxNameLen)
			}
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			writeLabel(&sb, b[off+1:off+1+c])
			off += 1 + c
		case 0xc0:
			if off+1 >= len(b) {
				return "", -1, nil
			}
			if end < 0 {
				end = off + 2
			}
			jumps++
			if jumps > maxPointers {
				return "", -1, fmt.Errorf("%w: compression pointer loop at offset %d", ErrMalformed, off)
			}
			off = int(binary.BigEndian.Uint16(b[off:]) & 0x3fff)
		default:
			// 0x40 and 0x80 are the obsolete extended-label and reserved
			// types; a length byte like this usually means a label > 63.
			return "", -1, fmt.Errorf("%w: label length byte 0x%02x at offset %d exceeds %d", ErrMalformed, c, off, maxLabel)
		}
	}
}

// writeLabel appends a label in dig's presentation form, escaping dots,
// backslashes and non-printable bytes so the text is unambiguous and safe
// to log.
func writeLabel(sb *strings.Builder, l []byte) {
	for _, c := range l {
		switch {
		case c == '.' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c < 0x21 || c > 0x7e:
			sb.WriteByte('\\')
			s := strconv.Itoa(int(c))
			sb.WriteString(strings.Repeat("0", 3-len(s)))
			sb.WriteString(s)
		default:
			sb.WriteByte(c)
		}
	}
}

var typeNames = map[uint16]string{
	TypeA: "A", TypeNS: "NS", TypeCNAME: "CNAME", TypeSOA: "SOA", TypePTR: "PTR",
	TypeMX: "MX", TypeTXT: "TXT", TypeAAAA: "AAAA", TypeSRV: "SRV",
	TypeSVCB: "SVCB", TypeHTTPS: "HTTPS", TypeANY: "ANY",
}

// TypeString returns the mnemonic for a record type, or "TYPE<n>" (the RFC
// 3597 generic form) for types without one here.
func TypeString(t uint16) string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

var rcodeNames = []string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"}

// RcodeString returns the mnemonic for a response code, or "RCODE<n>".
func RcodeString(r int) string {
	if r >= 0 && r < len(rcodeNames) {
		return rcodeNames[r]
	}
	return "RCODE" + strconv.Itoa(r)
}
