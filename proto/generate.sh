#!/usr/bin/env bash
# Regenerates the Go code and the OpenAPI document from tracecam/v1/*.proto.
# Tools: protoc and the google/api + google/protobuf protos from Debian
# (protobuf-compiler, libprotobuf-dev, golang-github-grpc-ecosystem-grpc-gateway-dev);
# the protoc plugins at the versions pinned as tool dependencies in go.mod.
# Usage: proto/generate.sh [OUTDIR]   (default: proto/, i.e. in place)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
googleapis=/usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis
for f in /usr/bin/protoc "$googleapis/google/api/annotations.proto" /usr/include/google/protobuf/timestamp.proto; do
  [ -e "$f" ] || { echo "generate.sh: $f missing: run make deps" >&2; exit 1; }
done
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
(cd "$here/.." && go build -o "$bin/" \
  google.golang.org/protobuf/cmd/protoc-gen-go \
  google.golang.org/grpc/cmd/protoc-gen-go-grpc \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2)
mkdir -p "$out"
cd "$here"
PATH="$bin:$PATH" protoc -I . -I "$googleapis" -I /usr/include \
  --go_out=paths=source_relative:"$out" \
  --go-grpc_out=paths=source_relative:"$out" \
  --grpc-gateway_out=paths=source_relative:"$out" \
  --openapiv2_out="$out" --openapiv2_opt=json_names_for_fields=false,disable_default_errors=false \
  tracecam/v1/*.proto
