#!/usr/bin/env bash
# Renders deploy/release.yaml, the manifest for `kubectl apply -f`, from the
# Helm chart with its default values into the namespace image-swapper.
# test/deploy fails when release.yaml differs from what this prints, so run
# it after every change to the chart:
#
#   eval "$(bash .ci/tools.sh helm)"; deploy/render.sh
#
# Usage: deploy/render.sh [OUTPUT]   (default deploy/release.yaml; - for stdout)
#
# Helm is $IMAGE_SWAPPER_HELM4, else $IMAGE_SWAPPER_HELM3, else helm on PATH.
# Helm 4 puts an empty line before each "---" and Helm 3 does not; those
# lines are dropped so that both render the same bytes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/release.yaml}"
helm="${IMAGE_SWAPPER_HELM4:-${IMAGE_SWAPPER_HELM3:-$(command -v helm || true)}}"
if [[ -z "$helm" || ! -x "$helm" ]]; then
	echo "render.sh: no Helm binary: run \`eval \"\$(bash .ci/tools.sh helm)\"\` to build one (IMAGE_SWAPPER_HELM4/IMAGE_SWAPPER_HELM3)" >&2
	exit 1
fi
namespace=image-swapper

render() {
	cat <<HEADER
# image-swapper: the admission webhook, rendered by deploy/render.sh from
# deploy/helm/image-swapper with its default values. Do not edit: change the
# chart and run deploy/render.sh. Install with
#   kubectl apply -f release.yaml
---
apiVersion: v1
kind: Namespace
metadata:
  name: $namespace
HEADER
	"$helm" template image-swapper "$here/helm/image-swapper" --namespace "$namespace" |
		awk 'NR > 1 && !($0 == "---" && prev == "") { print prev } { prev = $0 } END { if (NR > 0) print prev }'
}

if [[ "$out" == "-" ]]; then
	render
else
	tmp="$(mktemp "$out.XXXXXX")"
	trap 'rm -f "$tmp"' EXIT
	render >"$tmp"
	chmod 0644 "$tmp"
	mv "$tmp" "$out"
	trap - EXIT
fi
