// Package profile defines a request profile — the camera view of one request
// a pod served — and its categories. The JSON field names are the API
// contract of DESIGN.md (snake_case proto names); do not rename them.
package profile
