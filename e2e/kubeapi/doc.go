// Package kubeapi runs a real Kubernetes control plane for tests: an etcd and
// a kube-apiserver built from the Go module proxy (build.sh next to this
// file), started on free loopback ports with a fresh etcd data directory per
// test. There is no kubelet, scheduler or controller-manager: objects are
// stored and go through authentication, RBAC, admission (including
// MutatingAdmissionWebhook) and validation exactly as in a cluster, but pods
// stay Pending and nothing reconciles them.
//
// Start returns a Server with an admin client (bearer token in the
// system:masters group), a dynamic client, a REST mapper for applying
// arbitrary manifests, and a kubeconfig file for binaries a test starts.
//
// Binaries are cached in <repo>/.cache/kube (KUBE_BINARIES_DIR overrides the
// folder). When they are missing, the first Start builds them, which takes
// about 8 minutes on 2 idle cores with a cold Go build cache (24 minutes was
// measured with other builds running beside it; about 15 s with a warm
// cache), so run tests that call Start with a long timeout, e.g.
//
//	e2e/kubeapi/build.sh   # optional: build first, outside any test timeout
//	go test -timeout 30m ./e2e/kubeapi/
//
// Concurrent test packages share one build (build.sh takes a file lock).
// When the binaries cannot be built, Start skips the test, unless
// TRACECAM_REQUIRE_KUBE is set (as `make test` does): then it fails it.
package kubeapi
