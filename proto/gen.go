// Package proto holds the tracecam API definition (tracecam/v1/*.proto).
// The generated Go code is in tracecam/v1 (package tracecamv1) and the
// OpenAPI v2 document of the REST mapping is OpenAPI; generate.sh (make
// generate) rebuilds both, and TestGeneratedInSync checks they match.
package proto

import _ "embed"

// OpenAPI is the OpenAPI v2 document of the REST API, served at /openapi.json.
//
//go:embed tracecam/v1/profiler.swagger.json
var OpenAPI []byte
