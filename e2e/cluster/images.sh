#!/usr/bin/env bash
# Container images built here, offline, with Debian's buildah (nothing can be
# pulled): each is written to stdout as a docker-archive, which
# `ctr -n k8s.io images import -` takes (an OCI archive's name would be
# imported unnormalised).
#
#   images.sh pause TAG                  Kubernetes' pause (its pause.c, static)
#   images.sh static TAG BINARY [PORT]   FROM scratch + one static binary as /app
#   images.sh dockerfile TAG NAME        images/NAME.Dockerfile with BUILD_FROM=local
#                                        and BASE=scratch: the static binary in
#                                        bin/static/ (make images IMAGES_FROM=local)
#   images.sh demo-app TAG               a Debian bookworm rootfs with python3
#                                        (mmdebstrap, from Debian's mirror; cached
#                                        as /var/lib/tracecam-cluster/demo-rootfs.tar)
#   images.sh debian TAG BINARY...       FROM scratch + Debian's binaries at their
#                                        paths, with the shared libraries they
#                                        load (ldd), e.g. redis-server + redis-cli
#
# buildah keeps its storage under /var/lib/tracecam-cluster/buildah (never the
# machine's own), on the vfs driver: slower than overlay for big images, and
# it works whatever the filesystem below.
set -euo pipefail

store=/var/lib/tracecam-cluster/buildah
b() { buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs "$@"; }
command -v buildah >/dev/null || { echo "images: buildah missing (Debian package buildah; make deps)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# commit CONTAINER TAG: the working container as image TAG, written out.
commit() {
  b commit --quiet --format docker "$1" "$2" >/dev/null
  b rm "$1" >/dev/null
  emit "$2"
}

# emit TAG: image TAG as a docker-archive on stdout, then out of buildah's
# storage (containerd keeps the imported copy).
emit() {
  b push --quiet "$1" "docker-archive:$work/image.tar:$1" >&2
  b rmi "$1" >/dev/null 2>&1 || true
  cat "$work/image.tar"
}

# scratch_image TAG FILE ENTRYPOINT-JSON [PORT]: FILE as /app or /pause.
scratch_image() {
  local tag=$1 file=$2 dest=$3 port=${4:-}
  local c
  c=$(b from --quiet scratch)
  b copy --quiet --chmod 0755 "$c" "$file" "$dest" >/dev/null
  b config --entrypoint "[\"$dest\"]" --user 65534:65534 "$c"
  [[ -n $port ]] && b config --port "$port" "$c"
  commit "$c" "$tag"
}

# debian_image TAG BINARY...: each binary (symlinks followed, kept under
# its own name: redis-server is a link to redis-check-rdb and decides by
# argv[0]) and every library ldd finds for it, at their paths.
debian_image() {
  local tag=$1; shift
  local rootfs=$work/rootfs bin lib
  mkdir -p "$rootfs"
  for bin in "$@"; do
    bin=$(command -v "$bin") || { echo "images: $bin not found" >&2; exit 1; }
    install -D -m 0755 "$(readlink -f "$bin")" "$rootfs$bin"
    for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
      [[ -e $rootfs$lib ]] || install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
    done
  done
  mkdir -p "$rootfs/tmp" "$rootfs/data"
  chmod 1777 "$rootfs/tmp" "$rootfs/data"
  local c
  c=$(b from --quiet scratch)
  b copy --quiet "$c" "$rootfs/." / >/dev/null
  b config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --workingdir /data "$c"
  commit "$c" "$tag"
}

# rootfs_image TAG TARBALL: a whole root filesystem.
rootfs_image() {
  local tag=$1 tarball=$2 c
  c=$(b from --quiet scratch)
  b add --quiet "$c" "$tarball" / >/dev/null
  b config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
  commit "$c" "$tag"
}

case ${1:-} in
  pause)
    tag=${2:?tag}
    src=$(go env GOMODCACHE)/k8s.io/kubernetes@${KUBE_VERSION:-v1.37.2}/build/pause/linux/pause.c
    if [[ ! -f $src ]]; then
      (cd "$work" && go mod download "k8s.io/kubernetes@${KUBE_VERSION:-v1.37.2}" >/dev/null 2>&1) || true
    fi
    [[ -f $src ]] || { echo "images: $src missing (go mod download k8s.io/kubernetes@${KUBE_VERSION:-v1.37.2})" >&2; exit 1; }
    gcc -Os -static -DVERSION="${tag##*:}" -o "$work/pause" "$src"
    scratch_image "$tag" "$work/pause" /pause
    ;;
  static)
    tag=${2:?tag} bin=${3:?binary}
    scratch_image "$tag" "$bin" /app "${4:-}"
    ;;
  dockerfile)
    tag=${2:?tag} name=${3:?name}
    root=$(cd "$(dirname "$0")/../.." && pwd)
    [[ -x $root/bin/static/tracecam-$name ]] || { echo "images: $root/bin/static/tracecam-$name missing (make images IMAGES_FROM=local builds it)" >&2; exit 1; }
    b bud --quiet --build-arg BUILD_FROM=local --build-arg BASE=scratch --build-arg VERSION=dev \
      -f "$root/images/$name.Dockerfile" -t "$tag" "$root" >/dev/null
    emit "$tag"
    ;;
  demo-app)
    tag=${2:?tag}
    cache=/var/lib/tracecam-cluster/demo-rootfs.tar
    if [[ ! -s $cache ]]; then
      command -v mmdebstrap >/dev/null || { echo "images: mmdebstrap missing (Debian package mmdebstrap; make deps)" >&2; exit 1; }
      mkdir -p "$(dirname "$cache")"
      mmdebstrap --quiet --variant=apt --include=python3 \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$cache.tmp" >&2
      mv "$cache.tmp" "$cache"
    fi
    rootfs_image "$tag" "$cache"
    ;;
  debian)
    tag=${2:?tag}
    shift 2
    debian_image "$tag" "$@"
    ;;
  *)
    echo "usage: $0 pause TAG | static TAG BINARY [PORT] | dockerfile TAG NAME | demo-app TAG | debian TAG BINARY..." >&2
    exit 2
    ;;
esac
