package render

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// JSONLine writes p as one compact JSON object followed by a newline.
func JSONLine(w io.Writer, p *profile.Profile) error {
	if p == nil {
		return errNilProfile
	}
	// A shallow copy is enough: only the top-level collections are swapped
	// for empty ones, the caller's maps and slices are never written to.
	c := *p
	if c.Breakdown == nil {
		c.Breakdown = map[profile.Category]int64{}
	}
	if c.Timeline == nil {
		c.Timeline = []profile.Segment{}
	}
	if c.DNS == nil {
		c.DNS = []profile.DNSQuery{}
	}
	if c.Network == nil {
		c.Network = []profile.NetworkPeer{}
	}
	if c.Diagnosis.Evidence == nil {
		c.Diagnosis.Evidence = []string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Paths and queries are full of & < >; \u0026 escapes only make the log
	// harder to read and grep, and nobody embeds this line in HTML.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}
