#!/usr/bin/env bash
# Tools that CI and tests need but that are not Go dependencies of the
# project. They are built from source through the Go module proxy (the only
# network this project's CI may use) and cached per machine, so a second run
# costs nothing.
#
# Sourced:   . .ci/tools.sh; tools_helm v4.3.1     # prints the binary path
# Executed:  .ci/tools.sh helm                     # builds the default versions and
#                                                  # prints IMAGE_SWAPPER_HELM3=... lines
#            eval "$(.ci/tools.sh helm)"           # exports them into the shell
#            .ci/tools.sh apt docker-registry      # installs missing Debian packages
#            .ci/tools.sh crane                    # builds crane; prints its path
#            .ci/tools.sh trivy                    # builds trivy; prints its path
#            .ci/tools.sh promtool                 # builds promtool; prints its path
#
# Environment:
#   IMAGE_SWAPPER_TOOLS_CACHE  cache root (default ~/.cache/image-swapper)
#   HELM3_VERSION, HELM4_VERSION  versions built by "helm" (defaults below)
#   CRANE_VERSION              version built by "crane" (default below)
#   TRIVY_VERSION              version built by "trivy" (default below)
#   PROMTOOL_VERSION           version of the prometheus module built by
#                              "promtool" (default below)

TOOLS_CACHE="${IMAGE_SWAPPER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-swapper}"
HELM3_VERSION="${HELM3_VERSION:-v3.22.0}"
HELM4_VERSION="${HELM4_VERSION:-v4.3.1}"
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
CRANE_VERSION="${CRANE_VERSION:-v0.22.1}"
TRIVY_VERSION="${TRIVY_VERSION:-v0.74.0}"
# The prometheus module's v0.3XX.Y is Prometheus 3.XX.Y.
PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"

# tools_log writes progress to stderr so that stdout carries only results.
tools_log() {
	printf 'tools: %s\n' "$*" >&2
}

# tools_cached_build LABEL BIN BUILDER [ARG...] prints BIN, building it first
# unless it is there: BUILDER runs with ARGs in a subshell (set -e) inside a
# new temporary directory and must leave a file named like BIN there. The
# result is renamed into place within BIN's directory, so that a concurrent
# or interrupted build never leaves a half-written binary at BIN.
tools_cached_build() {
	local label="$1" bin="$2" builder="$3"
	shift 3
	if [[ -x "$bin" ]]; then
		tools_log "$label: cached at $bin"
		printf '%s\n' "$bin"
		return 0
	fi
	local work start=$SECONDS status=0 name
	name="$(basename "$bin")"
	work="$(mktemp -d "${TMPDIR:-/tmp}/image-swapper-$name.XXXXXX")" || return 1
	tools_log "$label: building in $work"
	# Bash ignores set -e in a subshell that is part of a "||" list, so the
	# subshell runs as a job and its status is collected by wait: the build
	# stops at the first failing step.
	(
		set -e
		cd "$work"
		export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
		"$builder" "$@"
		mkdir -p "$(dirname "$bin")"
		cp "$work/$name" "$bin.tmp.$$"
		mv "$bin.tmp.$$" "$bin"
	) &
	wait "$!" || status=$?
	rm -rf "$work"
	if ((status != 0)); then
		tools_log "$label: build failed (exit $status)"
		return "$status"
	fi
	tools_log "$label: built in $((SECONDS - start))s, cached at $bin"
	printf '%s\n' "$bin"
}

# tools_helm VERSION builds helm VERSION (v3.x.y or v4.x.y) unless it is
# already cached, and prints the path of the binary.
tools_helm() {
	local version="${1:?usage: tools_helm VERSION (for example v4.3.1)}"
	local major="${version%%.*}"
	case "$major" in
	v3 | v4) ;;
	*)
		tools_log "helm version \"$version\": expected v3.x.y or v4.x.y"
		return 1
		;;
	esac
	tools_cached_build "helm $version" "$TOOLS_CACHE/helm-$version/helm" tools_build_helm "helm.sh/helm/$major" "$version"
}

# tools_build_helm MODULE VERSION builds helm in the current directory. The
# throwaway module keeps helm's dependencies out of the project's go.mod.
# "go install pkg@version" is not used because it refuses modules whose
# go.mod has replace directives; a module that requires helm does not.
tools_build_helm() {
	local module="$1" version="$2"
	export GOFLAGS=-mod=mod
	go mod init image-swapper.tools/helm >/dev/null 2>&1
	go get "$module/cmd/helm@$version" >&2
	# Helm reports its own version from this variable; without it
	# "helm version" prints a placeholder.
	go build -trimpath \
		-ldflags "-s -w -X $module/internal/version.version=$version" \
		-o helm "$module/cmd/helm" >&2
}

# tools_helm_env builds (or finds) Helm 3 and Helm 4 and prints the
# environment variables test/helm reads, one assignment a line.
tools_helm_env() {
	local h3 h4
	h3="$(tools_helm "$HELM3_VERSION")" || return 1
	h4="$(tools_helm "$HELM4_VERSION")" || return 1
	printf 'export IMAGE_SWAPPER_HELM3=%q\n' "$h3"
	printf 'export IMAGE_SWAPPER_HELM4=%q\n' "$h4"
}

# tools_kube_apiserver builds kube-apiserver $KUBE_VERSION from the
# k8s.io/kubernetes module unless cached, links Debian's etcd beside it, and
# prints the directory (what envtest calls KUBEBUILDER_ASSETS).
tools_kube_apiserver() {
	local dir="$TOOLS_CACHE/kube-$KUBE_VERSION"
	tools_cached_build "kube-apiserver $KUBE_VERSION (8-12 minutes on 2 cores)" "$dir/kube-apiserver" \
		tools_build_kube_apiserver "$KUBE_VERSION" >/dev/null || return 1
	[[ -x /usr/bin/etcd ]] || tools_apt etcd-server || return 1
	ln -sf /usr/bin/etcd "$dir/etcd"
	printf '%s\n' "$dir"
}

# tools_build_kube_apiserver VERSION builds kube-apiserver in the current
# directory.
tools_build_kube_apiserver() {
	local version="$1"
	export GOFLAGS=-mod=mod
	go mod init image-swapper.tools/kube >/dev/null 2>&1
	# k8s.io/kubernetes replaces its staging modules with local paths; a
	# module that requires it must name their versions.
	local staging="v0${version#v1}"
	go mod download -json "k8s.io/kubernetes@$version" >info.json
	local gomod
	gomod="$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' info.json)"
	go mod edit -require "k8s.io/kubernetes@$version"
	grep -E '^\s*k8s.io/[^ ]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
		go mod edit -replace "$m=$m@$staging"
	done
	go get "k8s.io/kubernetes/cmd/kube-apiserver@$version" >&2
	go build -trimpath -ldflags "-s -w" -o kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver >&2
}

# tools_apt PACKAGE... installs the Debian packages that are not installed
# yet, quietly (apt's output is shown only when it fails). It runs
# apt-get update only when the package lists lack a package (a fresh
# container has no lists) or an install fails on stale lists. Not root: it
# uses sudo, without a password prompt.
tools_apt() {
	if (($# == 0)); then
		tools_log "usage: tools_apt PACKAGE..."
		return 2
	fi
	local pkg missing=()
	for pkg in "$@"; do
		if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]]; then
			missing+=("$pkg")
		fi
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	local as_root=(env DEBIAN_FRONTEND=noninteractive)
	if ((EUID != 0)); then
		if ! command -v sudo >/dev/null 2>&1; then
			tools_log "apt: ${missing[*]} missing, and installing needs root or sudo"
			return 1
		fi
		as_root=(sudo -n "${as_root[@]}")
	fi
	local log updated=0
	log="$(mktemp "${TMPDIR:-/tmp}/image-swapper-apt.XXXXXX")" || return 1
	for pkg in "${missing[@]}"; do
		# A package the lists do not know has no candidate version.
		if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [^(]'; then
			updated=1
			break
		fi
	done
	tools_log "apt: installing ${missing[*]}"
	if ((updated)) && ! "${as_root[@]}" apt-get update -qq >>"$log" 2>&1; then
		tools_log "apt: apt-get update failed:"
		cat "$log" >&2
		rm -f "$log"
		return 1
	fi
	local install=("${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}")
	if ! "${install[@]}" >>"$log" 2>&1; then
		# Lists older than the mirror name files it no longer has.
		if ((updated)) || ! { "${as_root[@]}" apt-get update -qq && "${install[@]}"; } >>"$log" 2>&1; then
			tools_log "apt: installing ${missing[*]} failed:"
			cat "$log" >&2
			rm -f "$log"
			return 1
		fi
	fi
	rm -f "$log"
	tools_log "apt: installed ${missing[*]}"
}

# tools_crane [VERSION] builds go-containerregistry's crane (default
# $CRANE_VERSION) unless it is cached, and prints the path of the binary.
tools_crane() {
	local version="${1:-$CRANE_VERSION}"
	tools_cached_build "crane $version" "$TOOLS_CACHE/crane-$version/crane" tools_build_crane "$version"
}

# tools_build_crane VERSION builds crane in the current directory.
# go-containerregistry's go.mod has no replace directives, so
# "go install pkg@version" builds it outside any module.
tools_build_crane() {
	GOBIN="$PWD" GOFLAGS='' go install -trimpath -ldflags "-s -w" \
		"github.com/google/go-containerregistry/cmd/crane@$1" >&2
}

# tools_trivy [VERSION] builds Aqua Security's trivy (default
# $TRIVY_VERSION) unless it is cached, and prints the path of the binary.
# The vulnerability gate's e2e tests run it offline against a synthetic
# database.
tools_trivy() {
	local version="${1:-$TRIVY_VERSION}"
	tools_cached_build "trivy $version (6-10 minutes on 2 cores)" "$TOOLS_CACHE/trivy-$version/trivy" tools_build_trivy "$version"
}

# tools_build_trivy VERSION builds trivy in the current directory, in a
# throwaway module that requires it: "go install pkg@version" refuses it
# (its go.mod has replace directives). Trivy needs the encoding/json/v2
# experiment. Its version string comes from pkg/version/app.ver, as its
# release builds set it.
tools_build_trivy() {
	local version="$1"
	export GOFLAGS=-mod=mod GOEXPERIMENT=jsonv2
	go mod init image-swapper.tools/trivy >/dev/null 2>&1
	go get "github.com/aquasecurity/trivy/cmd/trivy@$version" >&2
	go build -trimpath \
		-ldflags "-s -w -X github.com/aquasecurity/trivy/pkg/version/app.ver=${version#v}" \
		-o trivy github.com/aquasecurity/trivy/cmd/trivy >&2
}

# tools_promtool [VERSION] builds Prometheus's promtool (default
# $PROMTOOL_VERSION, a version of the github.com/prometheus/prometheus
# module) unless it is cached, and prints the path of the binary.
# test/deploy runs "promtool check rules" and "promtool test rules" on the
# alerting rules in deploy/monitoring.
tools_promtool() {
	local version="${1:-$PROMTOOL_VERSION}"
	tools_cached_build "promtool $version" "$TOOLS_CACHE/promtool-$version/promtool" tools_build_promtool "$version"
}

# tools_build_promtool VERSION builds promtool in the current directory, in
# a throwaway module that requires prometheus: "go install pkg@version"
# refuses it (its go.mod has replace and exclude directives). The version
# is stamped the way Prometheus's release builds do it, for
# "promtool --version".
tools_build_promtool() {
	local version="$1"
	export GOFLAGS=-mod=mod
	go mod init image-swapper.tools/promtool >/dev/null 2>&1
	go get "github.com/prometheus/prometheus/cmd/promtool@$version" >&2
	# v0.316.0 is Prometheus 3.16.0.
	local release="${version#v0.}"
	release="${release:0:1}.${release:1}"
	go build -trimpath \
		-ldflags "-s -w -X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Revision=$version" \
		-o promtool github.com/prometheus/prometheus/cmd/promtool >&2
}

tools_main() {
	case "${1:-}" in
	helm)
		shift
		if (($# == 0)); then
			tools_helm_env
		else
			local v
			for v in "$@"; do
				tools_helm "$v" || return 1
			done
		fi
		;;
	kube)
		printf 'export KUBEBUILDER_ASSETS=%q\n' "$(tools_kube_apiserver)"
		;;
	apt)
		shift
		tools_apt "$@"
		;;
	crane)
		shift
		tools_crane "$@"
		;;
	trivy)
		shift
		tools_trivy "$@"
		;;
	promtool)
		shift
		tools_promtool "$@"
		;;
	*)
		cat >&2 <<USAGE
usage: $0 helm [VERSION...] | kube | apt PACKAGE... | crane [VERSION] | trivy [VERSION] | promtool [VERSION]
  helm             build Helm $HELM3_VERSION and $HELM4_VERSION; print IMAGE_SWAPPER_HELM3/4 exports
  helm VERSION...  build the given Helm versions; print their paths
  kube             build kube-apiserver $KUBE_VERSION, install etcd; print the KUBEBUILDER_ASSETS export
  apt PACKAGE...   install the Debian packages that are missing (docker-registry, skopeo, ...)
  crane [VERSION]  build crane (default $CRANE_VERSION); print its path
  trivy [VERSION]  build trivy (default $TRIVY_VERSION, 6-10 minutes); print its path
  promtool [VERSION]
                   build promtool (default $PROMTOOL_VERSION); print its path
USAGE
		return 2
		;;
	esac
}

# Run only when executed, so that sourcing defines the functions and nothing else.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -uo pipefail
	tools_main "$@"
fi
