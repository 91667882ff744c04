// Package manifests holds tracecam's Kubernetes manifests, installed with
// kustomize:
//
//	kubectl apply -k manifests/            # tracecam itself, in tracecam-system
//	kubectl apply -k manifests/example/    # an annotated demo app
//
// manifests/cert-manager/ is a kustomize Component that lets cert-manager
// issue the webhook's certificate instead of the webhook itself. See
// docs/kubernetes.md.
//
// The Go code here is for tests: [Files] embeds the manifests, and the tests
// decode every file strictly with the Kubernetes API types and check the
// invariants the rest of tracecam relies on (the webhook fails open and is
// called only for annotated pod creations, the webhook runs non-root with
// two replicas, RBAC is minimal, every kustomization lists exactly the files
// of its folder). They need no cluster; e2e/ dry-runs the same files against
// a real kube-apiserver.
package manifests
