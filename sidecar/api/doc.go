// Package api implements the tracecam.v1.Profiler gRPC service over the
// sidecar's profile store, its status, the endpoints' baselines and a hub
// of live profiles. The REST
// API is the same service through grpc-gateway (package gateway), so both
// answer with the same data.
package api
