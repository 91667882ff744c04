// Package certs gives the webhook a TLS certificate without outside help:
// a private CA and a serving certificate for the webhook's Service, kept in
// one Secret that every replica shares, with the CA handed to the API server
// through the caBundle of the MutatingWebhookConfiguration.
//
// The decisions are a pure function, [Plan]: given what the Secret holds,
// the names to serve and the time, it returns the material to store and
// what changed. [Manager] is the thin shell around it that reads and writes
// the Secret and the webhook configuration with client-go, and serves the
// current certificate to the TLS listener.
//
// # Rotation without an outage
//
// The API server trusts only the CAs in caBundle, and replicas pick up a new
// Secret at different moments, so the order matters:
//
//  1. When the CA nears expiry (less than a third of its lifetime left), a
//     new CA is created and the bundle holds both the new and the old CA;
//     the serving certificate, still signed by the old CA, is kept.
//  2. The bundle is written to caBundle.
//  3. Only once caBundle holds the new CA is a serving certificate signed by
//     it issued. Until then every replica serves a certificate the API server
//     trusts; the old CA leaves the bundle when it expires.
//
// A serving certificate nearing expiry (less than a third of its lifetime
// left), missing the Service's names, or not matching its key is simply
// reissued by the current CA, which caBundle already trusts.
//
// Replicas race benignly: the first to create the Secret wins (the others
// get AlreadyExists and read it), and updates carry the resourceVersion they
// read, so a conflict means someone else rotated: re-read and use theirs.
package certs
