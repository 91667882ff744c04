# tracecam-sidecar: the per-pod eBPF camera the webhook injects.
#
#   docker build -f images/sidecar.Dockerfile --build-arg VERSION=$(git describe --always --dirty) \
#     -t ghcr.io/tracecam/tracecam-sidecar:<version> .      # from the repository root
#
# (make images does this for docker, podman or buildah.) The build needs no
# clang: the compiled eBPF object is committed in bpf/ and embedded in the
# binary.

ARG GO_VERSION=1.26
# BUILD_FROM=local takes the static binary from bin/static/ (make images
# IMAGES_FROM=local builds it there) instead of compiling in a golang image,
# and BASE=scratch replaces distroless: what a machine that cannot pull
# builds with (the test cluster's images come from here that way).
ARG BUILD_FROM=source
ARG BASE=gcr.io/distroless/static-debian12

FROM golang:${GO_VERSION} AS build-source
ARG VERSION=dev
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The eBPF programs read x86-64 syscall registers (bpf/camera.bpf.c), so
# only an amd64 sidecar works; fail here rather than on the node.
RUN arch="$(go env GOARCH)"; if [ "$arch" != amd64 ]; then \
      echo "tracecam-sidecar supports linux/amd64 only (got $arch): build with --platform linux/amd64" >&2; exit 1; fi
# Static (CGO_ENABLED=0): the distroless/static image has no libc. The
# version is the one make build sets (Makefile LDFLAGS).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/tracecam/tracecam/sidecar/agent.Version=${VERSION}" \
      -o /out/tracecam-sidecar ./cmd/tracecam-sidecar

FROM scratch AS build-local
COPY bin/static/tracecam-sidecar /out/tracecam-sidecar

FROM build-${BUILD_FROM} AS build

FROM ${BASE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="tracecam-sidecar" \
      org.opencontainers.image.description="tracecam: a program camera for Kubernetes pods (eBPF sidecar)" \
      org.opencontainers.image.source="https://github.com/tracecam/tracecam" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/tracecam-sidecar /tracecam-sidecar
# Root, on purpose (unlike the webhook). Loading eBPF programs and maps
# takes CAP_BPF, attaching the tracing programs CAP_PERFMON, opening a Go
# app's binary for the goroutine probes CAP_SYS_PTRACE: the webhook adds
# exactly these three to the container and drops every other. A non-root
# user would not hold them in its effective set (file capabilities are no
# option on a static distroless image), and the sidecar also reads the
# host's cgroup tree mounted at /sys/fs/cgroup. The filesystem stays
# read-only (readOnlyRootFilesystem) and nothing else is granted.
USER 0:0
# 7070 gRPC (tracecam.v1.Profiler), 7071 HTTP (REST, /metrics, /healthz, /readyz).
EXPOSE 7070 7071
ENTRYPOINT ["/tracecam-sidecar"]
