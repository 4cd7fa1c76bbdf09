#!/usr/bin/env bash
# Builds the Kubernetes test control plane into the user's cache, once per version.
# Usage: tests/testenv/build.sh   (prints the directory holding the binaries)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(awk '/^require k8s.io\/kubernetes /{print $3}' "$here/go.mod")"
out="${XDG_CACHE_HOME:-$HOME/.cache}/sapphire/testenv/${version}"
bins=(etcd kube-apiserver kube-controller-manager kubectl)

missing=0
for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing=1; done
if [ "$missing" = 0 ]; then echo "$out"; exit 0; fi

command -v go >/dev/null || { echo "Go is needed to build the test control plane (or set KUBEBUILDER_ASSETS / SAPPHIRE_TEST_KUBECONFIG)" >&2; exit 1; }
# Kubernetes names the Go it is built with; a newer Go served a broken /openapi/v2.
want="$(cat "$(go env GOMODCACHE)/k8s.io/kubernetes@${version}/.go-version" 2>/dev/null || true)"
have="$(go env GOVERSION)"
if [ -n "$want" ] && [ "${have#go}" != "$want" ] && [ "$(echo "${have#go}" | cut -d. -f1,2)" != "$(echo "$want" | cut -d. -f1,2)" ]; then
  echo "warning: Kubernetes ${version} wants Go ${want}, building with ${have}" >&2
fi

minor="$(echo "$version" | cut -d. -f2)"
# Without a stamped version kubectl cannot parse the server version and refuses to validate.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done
tmp="$out.partial"
mkdir -p "$tmp"
cd "$here"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
go build -trimpath -ldflags "$ldflags" -o "$tmp/etcd" ./cmd/etcd
for b in kube-apiserver kube-controller-manager kubectl; do
  go build -trimpath -ldflags "$ldflags" -o "$tmp/$b" "k8s.io/kubernetes/cmd/$b"
done
mkdir -p "$out"
for b in "${bins[@]}"; do mv "$tmp/$b" "$out/$b"; done
rmdir "$tmp"
echo "$out"
