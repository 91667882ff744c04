#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy,
# kubelet, kubectl, etcd, CoreDNS and grpcurl from the Go module proxy into DIR (default .cache/kube at
# the repository root, git-ignored; kubectl is also linked at bin/kubectl)
# unless DIR already holds binaries of these versions. Neither can be `go install`ed (their go.mod
# files carry replace directives), so each is built inside a throwaway module
# whose replace block is derived from the release's own go.mod.
# Cold: ~7 min for kube-apiserver, ~3 min more for the other four (they share
# most packages) and ~1 min for etcd on 2 cores; with a warm Go build cache
# (kept by default between runs on one machine): ~15 s each.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$root/.cache/kube}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
GO=${GO:-go}
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

# Tests of several packages may call this at once (go test runs packages in
# parallel): one builds, the others wait and then find the stamp.
exec 9>"$dir/.lock"
flock 9

kube_cmds=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl)
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
GRPCURL_VERSION=${GRPCURL_VERSION:-v1.9.4}
stamp="$dir/versions"
want="${kube_cmds[*]} $KUBE_VERSION etcd $ETCD_VERSION coredns $COREDNS_VERSION grpcurl $GRPCURL_VERSION"
link_kubectl() { mkdir -p "$root/bin" && ln -sf "$dir/kubectl" "$root/bin/kubectl"; }
if [[ -x $dir/etcd && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  link_kubectl
  exit 0
fi

staging=v0${KUBE_VERSION#v1}   # v1.37.2 -> v0.37.2

# Kubernetes (the directory keeps its old name: the Go build cache does not
# care, and a warm cache is what makes this fast)
src="$dir/src/kube-apiserver"
rm -rf "$src" && mkdir -p "$src"
echo "building ${kube_cmds[*]} $KUBE_VERSION (cold: ~10 min, warm: ~1 min)" >&2
gomod=$(cd "$src" && "$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
[[ -f $gomod ]] || { echo "cannot download k8s.io/kubernetes@$KUBE_VERSION's go.mod" >&2; exit 1; }
{
  echo "module tracecam.local/kubebuild"
  echo
  echo "go $("$GO" env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/').0"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  # Every staging module the release replaces with ./staging/... is taken
  # from the proxy at the matching v0 version instead (the two samples are
  # not served and not needed).
  sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/[a-z0-9-]*$#\1#p' "$gomod" |
    grep -v -e sample-cli-plugin -e sample-controller |
    while read -r m; do echo "replace $m => $m $staging"; done
} >"$src/go.mod"
{
  echo "//go:build tools"
  echo
  echo "package kubebuild"
  echo
  for c in "${kube_cmds[@]}"; do echo "import _ \"k8s.io/kubernetes/cmd/$c\""; done
} >"$src/tools.go"
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
(cd "$src" && { "$GO" mod tidy >/dev/null 2>&1 || "$GO" mod tidy; })
for c in "${kube_cmds[@]}"; do
  (cd "$src" && "$GO" build -o "$dir/$c" \
    -ldflags "-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    "k8s.io/kubernetes/cmd/$c")
done

# etcd
src="$dir/src/etcd"
rm -rf "$src" && mkdir -p "$src"
echo "building etcd $ETCD_VERSION" >&2
cat >"$src/go.mod" <<GOMOD
module tracecam.local/etcdbuild

go 1.26.0

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
GOMOD
cat >"$src/tools.go" <<'GO'
//go:build tools

package etcdbuild

import _ "go.etcd.io/etcd/server/v3"
GO
(cd "$src" && { "$GO" mod tidy >/dev/null 2>&1 || "$GO" mod tidy; } && "$GO" build -o "$dir/etcd" go.etcd.io/etcd/server/v3)

# CoreDNS, the test cluster's DNS (e2e/cluster)
src="$dir/src/coredns"
rm -rf "$src" && mkdir -p "$src"
echo "building coredns $COREDNS_VERSION" >&2
cat >"$src/go.mod" <<GOMOD
module tracecam.local/corednsbuild

go 1.26.0

require github.com/coredns/coredns $COREDNS_VERSION
GOMOD
cat >"$src/tools.go" <<'GO'
//go:build tools

package corednsbuild

import _ "github.com/coredns/coredns"
GO
(cd "$src" && { "$GO" mod tidy >/dev/null 2>&1 || "$GO" mod tidy; } && "$GO" build -o "$dir/coredns" github.com/coredns/coredns)

# grpcurl, the gRPC client a user points at a sidecar (no replace
# directives: go install works)
echo "building grpcurl $GRPCURL_VERSION" >&2
GOBIN="$dir" "$GO" install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"

echo "$want" >"$stamp"
link_kubectl
