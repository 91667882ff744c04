// Package webhook is the core of tracecam's mutating admission webhook.
package webhook
