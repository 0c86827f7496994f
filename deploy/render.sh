#!/usr/bin/env bash
# Renders deploy/release.yaml, the manifest for `kubectl apply -f`, from the
# Helm chart with its default values into the namespace image-swapper, and
# deploy/monitoring/prometheusrule.yaml, the chart's PrometheusRule (the
# alerting rules of files/prometheus-rules.yaml). test/deploy fails when
# either differs from what this prints, so run it after every change to the
# chart:
#
#   eval "$(bash .ci/tools.sh helm)"; deploy/render.sh
#
# Usage: deploy/render.sh                        both files
#        deploy/render.sh OUTPUT                 release.yaml into OUTPUT (- for stdout)
#        deploy/render.sh --prometheusrule OUTPUT  the PrometheusRule into OUTPUT (- for stdout)
#
# Helm is $IMAGE_SWAPPER_HELM4, else $IMAGE_SWAPPER_HELM3, else helm on PATH.
# Helm 4 puts an empty line before each "---" and Helm 3 does not; those
# lines are dropped so that both render the same bytes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
helm="${IMAGE_SWAPPER_HELM4:-${IMAGE_SWAPPER_HELM3:-$(command -v helm || true)}}"
if [[ -z "$helm" || ! -x "$helm" ]]; then
	echo "render.sh: no Helm binary: run \`eval \"\$(bash .ci/tools.sh helm)\"\` to build one (IMAGE_SWAPPER_HELM4/IMAGE_SWAPPER_HELM3)" >&2
	exit 1
fi
namespace=image-swapper

render_release() {
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

render_prometheusrule() {
	cat <<HEADER
# image-swapper's alerting rules as a Prometheus Operator PrometheusRule,
# rendered by deploy/render.sh from deploy/helm/image-swapper (values
# prometheusRule.enabled=true) into the namespace $namespace. Do not edit:
# change deploy/helm/image-swapper/files/prometheus-rules.yaml and run
# deploy/render.sh. Runbooks: docs/operations.md, "Dashboards and alerts".
HEADER
	"$helm" template image-swapper "$here/helm/image-swapper" --namespace "$namespace" \
		--set prometheusRule.enabled=true --show-only templates/prometheusrule.yaml |
		sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' # Helm 4's trailing empty line
}

# write RENDER OUTPUT runs RENDER into OUTPUT (stdout for -), replacing
# OUTPUT only when RENDER succeeded.
write() {
	local render="$1" out="$2" tmp
	if [[ "$out" == "-" ]]; then
		"$render"
		return
	fi
	tmp="$(mktemp "$out.XXXXXX")"
	trap 'rm -f "$tmp"' EXIT
	"$render" >"$tmp"
	chmod 0644 "$tmp"
	mv "$tmp" "$out"
	trap - EXIT
}

case "$#:${1:-}" in
0:)
	write render_release "$here/release.yaml"
	write render_prometheusrule "$here/monitoring/prometheusrule.yaml"
	;;
2:--prometheusrule)
	write render_prometheusrule "$2"
	;;
1:--*)
	echo "usage: deploy/render.sh [OUTPUT | --prometheusrule OUTPUT]" >&2
	exit 2
	;;
1:*)
	write render_release "$1"
	;;
*)
	echo "usage: deploy/render.sh [OUTPUT | --prometheusrule OUTPUT]" >&2
	exit 2
	;;
esac
