# tracecam-webhook: the mutating admission webhook that injects the sidecar.
#
#   docker build -f images/webhook.Dockerfile --build-arg VERSION=$(git describe --always --dirty) \
#     -t ghcr.io/tracecam/tracecam-webhook:<version> .      # from the repository root
#
# (make images does this for docker, podman or buildah.)

ARG GO_VERSION=1.26
# BUILD_FROM=local takes the static binary from bin/static/ (make images
# IMAGES_FROM=local builds it there) instead of compiling in a golang image,
# and BASE=scratch replaces distroless: what a machine that cannot pull
# builds with (the test cluster's images come from here that way).
ARG BUILD_FROM=source
ARG BASE=gcr.io/distroless/static-debian12:nonroot

FROM golang:${GO_VERSION} AS build-source
ARG VERSION=dev
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static (CGO_ENABLED=0): the distroless/static image has no libc. The
# version goes where make build puts it (Makefile LDFLAGS) and into the
# webhook's own main.version (its log and the tracecam.io/status
# annotation); -X on a name that does not exist is ignored.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X github.com/tracecam/tracecam/sidecar/agent.Version=${VERSION}" \
      -o /out/tracecam-webhook ./cmd/tracecam-webhook

# :nonroot runs as uid/gid 65532, the user manifests/deployment.yaml sets.
FROM scratch AS build-local
COPY bin/static/tracecam-webhook /out/tracecam-webhook

FROM build-${BUILD_FROM} AS build

FROM ${BASE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="tracecam-webhook" \
      org.opencontainers.image.description="tracecam: a program camera for Kubernetes pods (sidecar injector)" \
      org.opencontainers.image.source="https://github.com/tracecam/tracecam" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/tracecam-webhook /tracecam-webhook
USER 65532:65532
# TLS: AdmissionReviews (/mutate-v1-pod), /readyz, /healthz, /metrics.
EXPOSE 8443
ENTRYPOINT ["/tracecam-webhook"]
