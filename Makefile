# tracecam — see README.md. Everything runs as root on a Linux host with BTF.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/tracecam/tracecam/sidecar/agent.Version=$(VERSION) -X main.version=$(VERSION)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages the build, tests and benchmarks use, keyed by the command
# or file that proves each is present (so an installed machine skips apt).
DEPS := clang-14:clang-14 /usr/include/bpf/bpf_helpers.h:libbpf-dev curl:curl \
        python3:python3 java:openjdk-17-jdk-headless nginx:nginx-light wrk:wrk \
        cc:gcc capsh:libcap2-bin protoc:protobuf-compiler ip:iproute2 \
        redis-server:redis-server redis-cli:redis-tools \
        /usr/include/google/protobuf/timestamp.proto:libprotobuf-dev \
        /usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis/google/api/annotations.proto:golang-github-grpc-ecosystem-grpc-gateway-dev \
        gdb:gdb node:nodejs /usr/lib/python3/dist-packages/uvicorn/__init__.py:python3-uvicorn \
        /usr/lib/python3/dist-packages/fastapi/__init__.py:python3-fastapi \
        /usr/lib/python3/dist-packages/gunicorn/__init__.py:gunicorn \
        /usr/lib/python3/dist-packages/flask/__init__.py:python3-flask \
        containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
        buildah:buildah openssl:openssl mmdebstrap:mmdebstrap nft:nftables

.PHONY: all build demo test unit e2e generate bench deps fmt-check vet clean images kube-binaries cases test-stress cluster cluster-down

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

## demo: build, then profile a bundled demo service in a fresh cgroup
demo: build
	$(SUDO) ./bin/tracecam-demo

## deps: install what is missing from Debian's packages
deps:
	@missing=""; for d in $(DEPS); do what=$${d%%:*}; pkg=$${d##*:}; \
	  if [[ $$what == /* ]]; then [ -e "$$what" ] || missing="$$missing $$pkg"; \
	  else command -v "$$what" >/dev/null || missing="$$missing $$pkg"; fi; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

## generate: rebuild the eBPF objects (clang 14) and their Go bindings, and
## the API code and OpenAPI document from proto/ (Debian protoc, plugins pinned in go.mod)
generate: deps
	cd bpf && $(GO) generate ./...
	proto/generate.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## test: every test — unit, generated-code sync, end-to-end on the real kernel.
## The end-to-end tests run after the rest, alone: their workloads measure
## time, and on 2 cores the unit suites running beside them add noise.
## Both run under the race detector (the sidecar binary the e2e tests start
## is built with -race and stops at the first race).
## kube-apiserver and etcd for the webhook's end-to-end test come from the Go
## module proxy (e2e/kubeapi/build.sh, cached in .cache/kube; cold ~7 min on 2
## idle cores, then seconds), built before the tests so no test timeout pays it.
test: deps fmt-check vet kube-binaries
	TRACECAM_REQUIRE_KUBE=1 $(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /e2e$$)
	TRACECAM_REQUIRE_KUBE=1 TRACECAM_E2E_RACE=1 $(GO) test -count=1 -timeout 30m ./e2e/

kube-binaries:
	e2e/kubeapi/build.sh

## cluster: a real one-node Kubernetes cluster on this machine (etcd,
## kube-apiserver, kube-controller-manager, kube-scheduler and kubelet from
## the Go module proxy; Debian's containerd, runc and CNI bridge); the admin
## kubeconfig is .cache/cluster/kubeconfig, kubectl is bin/kubectl.
## cluster-down stops it. See docs/kubernetes.md.
cluster: deps kube-binaries
	e2e/cluster/cluster.sh up
	e2e/cluster/cluster.sh images

cluster-down:
	e2e/cluster/cluster.sh down

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: deps kube-binaries
	TRACECAM_REQUIRE_KUBE=1 $(GO) test -count=1 -timeout 30m -v ./e2e/

## test-stress: every e2e test 10 times on a quiet machine and 10 times
## under stress-ng (every CPU busy); the pass counts go into docs/testing.md.
## Not part of make test: ~40 min on 2 cores.
test-stress: deps kube-binaries
	@command -v stress-ng >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq stress-ng >/dev/null; }
	$(GO) run ./e2e/stress -runs 10 -out docs/testing.md

## cases: the field cases of docs/cases/ end to end (e2e/case*_test.go); each
## writes the camera output of its key trace into docs/cases/output/ and into
## its page (the blocks between the BEGIN/END output markers)
cases: deps
	TRACECAM_CASES_OUT=$(CURDIR)/docs/cases/output $(GO) test -count=1 -timeout 15m -v -run 'TestCase' ./e2e/

## bench: throughput and node tax with vs without the sidecar, side by side
bench: deps
	$(GO) run ./e2e/bench -out bench-results.md

## images: the container images ghcr.io/tracecam/tracecam-{sidecar,webhook}:$(VERSION)
## (images/*.Dockerfile), with docker, podman or buildah, whichever works;
## without any, says so and succeeds (nothing else needs the images).
## IMAGES_FROM=local: from static binaries built here into bin/static, on
## scratch, for a machine that cannot pull the Dockerfiles' bases.
IMAGE_REPO ?= ghcr.io/tracecam
IMAGES_FROM ?= source
images:
	@if [ "$(IMAGES_FROM)" = local ]; then \
	  CGO_ENABLED=0 $(GO) build -ldflags "-s -w $(LDFLAGS)" -o bin/static/ ./cmd/tracecam-sidecar ./cmd/tracecam-webhook || exit 1; fi
	@engine=""; \
	if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then engine="docker build"; \
	elif command -v podman >/dev/null 2>&1 && timeout 20 podman info >/dev/null 2>&1; then engine="podman build"; \
	elif command -v buildah >/dev/null 2>&1 && timeout 20 buildah info >/dev/null 2>&1; then engine="buildah bud"; fi; \
	if [ -z "$$engine" ]; then \
	  echo "images: no working container engine (a docker daemon, podman or buildah); not building the images"; exit 0; fi; \
	for img in sidecar webhook; do \
	  tag="$(IMAGE_REPO)/tracecam-$$img:$(VERSION)"; echo "images: $$engine $$tag"; \
	  args=""; [ "$(IMAGES_FROM)" = local ] && args="--build-arg BUILD_FROM=local --build-arg BASE=scratch"; \
	  $$engine --build-arg VERSION="$(VERSION)" $$args -f images/$$img.Dockerfile -t "$$tag" . || exit 1; \
	done

clean:
	rm -rf bin bench-results.md
