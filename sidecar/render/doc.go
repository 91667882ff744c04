// Package render turns a request profile into what a person or a pipeline
// reads: the terminal "camera view" ([Text], [TextWith]) and one compact JSON
// object per line ([JSONLine]).
//
// The camera view is for a human looking at one slow request: the request
// line first, then the diagnosis, then the breakdown as bars so the dominant
// category is visible before any number is read, then the evidence behind it
// (timeline of long waits, DNS lookups, downstream peers). Sections with
// nothing to show are left out so a fast CPU-bound request fits in a few
// lines; the breakdown is always shown because it is the one thing every
// profile has.
//
// Strings in a profile come from the traced process and the wire (the
// request path, file names, thread names) and may hold terminal control
// sequences; the text view escapes control characters so a crafted request
// cannot repaint or hijack the operator's terminal.
//
// The JSON line is the DESIGN.md contract encoded by encoding/json. Empty
// collections encode as {} and [] rather than null so consumers (jq, the
// collector) never need a null check; the caller's profile is copied, not
// patched, because callers often keep using it after logging it.
//
// Both writers build the whole output in memory and hand it to the writer in
// a single Write, so concurrent profiles logged to one stream never
// interleave mid-line.
package render
