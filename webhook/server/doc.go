// Package server is the webhook's thin shell: it serves the pure injector
// ([webhook.Handler]) on controller-runtime's webhook server, over TLS, with
// health and Prometheus metrics on the same port, and keeps the certificate
// with [certs.Manager] when the webhook manages its own TLS.
//
// Paths, all on the TLS port:
//
//	POST /mutate-v1-pod  AdmissionReview v1 (the MutatingWebhookConfiguration points here)
//	GET  /readyz         200 once a certificate is served and the listener answers; 503 while shutting down
//	GET  /healthz        200 while the process runs
//	GET  /metrics        Prometheus text format
//
// HTTP/2 is disabled on the listener (the API server speaks HTTP/1.1 to
// webhooks anyway, and it removes the HTTP/2 rapid-reset class of attacks).
package server
