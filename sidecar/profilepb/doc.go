// Package profilepb converts between the sidecar's in-memory profile
// ([profile.Profile]) and its wire form in the tracecam API
// ([tracecamv1.Profile]). The conversions are pure: they never share memory
// with their input, never fail, and never mutate what they are given.
//
// The two types carry the same fields under the same names, so a profile
// survives a round trip — FromProto(ToProto(p)) deep-equals p — up to the
// following normalisation, which is the whole of what the wire form cannot
// say:
//
//   - Empty collections come back nil. Proto has no "nil but present"
//     repeated field or map, so Timeline, DNS, Network, Breakdown and
//     Diagnosis.Evidence are nil after FromProto whenever they were nil or
//     empty before ToProto. (The assembler already leaves empty ones nil, and
//     render.JSONLine writes nil collections as [] and {}.)
//   - Times come back in UTC with no monotonic clock reading: StartTime is
//     equal per [time.Time.Equal] but only deep-equal when it was UTC and
//     had no monotonic reading to begin with (time.Now().UTC().Round(0)).
//   - The zero StartTime is sent as an unset start_time (nil Timestamp) and
//     an unset start_time comes back as the zero time, so "no start time"
//     survives the trip and is not mistaken for the year 1.
//   - Invalid UTF-8 in any string is replaced by U+FFFD. Strings in a
//     profile come from the traced process and the wire (request paths, file
//     names, thread names); proto3 strings must be valid UTF-8 and the gRPC
//     codec refuses to marshal a whole message over one bad byte.
//   - The int fields (StatusCode, Segment.Count, NetworkPeer.Calls) are
//     int32 on the wire; values outside the int32 range are clamped.
//
// Category and Cause values are copied as strings, unknown ones included,
// so a newer sidecar's categories pass through an older gateway unchanged.
package profilepb
