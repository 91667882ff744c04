// Package gateway is the REST shell of the tracecam API: the generated
// grpc-gateway routes (GET /v1/traces/{trace_id}, /v1/profiles, /v1/baselines,
// /v1/status) served in-process from a tracecamv1.ProfilerServer, plus the
// parts the generated code leaves to its user.
//
// Representation. JSON is the default and follows the API contract rather
// than protojson's defaults: proto field names (snake_case), every field
// present, 64-bit integers as JSON numbers (protojson writes them as
// strings), timestamps in RFC 3339, map keys sorted ([JSONMarshaler]). A
// person at a terminal asks for text, with ?format=text or
// Accept: text/plain, and gets the camera view of each profile as
// render.Text draws it ([TextMarshaler]). grpc-gateway picks the response
// marshaler by an exact match of the Accept header, so a middleware inside
// the mux first rewrites Accept to exactly "text/plain" or
// "application/json" when the query or a q-ranked Accept list asks for one.
// The format query parameter is also a field of the request messages, so
// the server sees it too; it may ignore it.
//
// Errors. Every error, from the server, from a query parameter the gateway
// cannot parse or from routing, is answered with the HTTP status of its
// gRPC code ([HTTPStatus]) and the body {"code": <gRPC code>, "error":
// "<message>", "status": <HTTP status>} ([ErrorBody]), or, when the request
// asked for text, the single line "404 Not Found: <message>". Unknown paths
// get 404 and known paths with another method 405 (HEAD is served as GET
// by [Handler]).
//
// Serving. [NewMux] builds the mux; [Handler] puts it behind a URL length
// limit and next to the caller's exact-path endpoints (/healthz, /metrics);
// [NewServer] gives it an http.Server with timeouts and a header limit. The
// OpenAPI document is passed in as bytes ([Options].OpenAPI), since the
// generated file lives in the proto package, out of go:embed's reach from
// here.
package gateway
