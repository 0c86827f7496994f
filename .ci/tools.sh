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
#
# Environment:
#   IMAGE_SWAPPER_TOOLS_CACHE  cache root (default ~/.cache/image-swapper)
#   HELM3_VERSION, HELM4_VERSION  versions built by "helm" (defaults below)

TOOLS_CACHE="${IMAGE_SWAPPER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-swapper}"
HELM3_VERSION="${HELM3_VERSION:-v3.22.0}"
HELM4_VERSION="${HELM4_VERSION:-v4.3.1}"
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"

# tools_log writes progress to stderr so that stdout carries only results.
tools_log() {
	printf 'tools: %s\n' "$*" >&2
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
	local module="helm.sh/helm/$major"
	local dir="$TOOLS_CACHE/helm-$version"
	local bin="$dir/helm"
	if [[ -x "$bin" ]]; then
		tools_log "helm $version: cached at $bin"
		printf '%s\n' "$bin"
		return 0
	fi

	local work
	work="$(mktemp -d "${TMPDIR:-/tmp}/image-swapper-helm-$version.XXXXXX")" || return 1
	# The throwaway module keeps helm's dependencies out of the project's
	# go.mod. "go install pkg@version" is not used because it refuses modules
	# whose go.mod has replace directives; a module that requires helm does not.
	local start=$SECONDS status=0
	tools_log "helm $version: building $module/cmd/helm in $work"
	(
		set -e
		cd "$work"
		export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
		go mod init image-swapper.tools/helm >/dev/null 2>&1
		go get "$module/cmd/helm@$version" >&2
		# Helm reports its own version from this variable; without it
		# "helm version" prints a placeholder.
		go build -trimpath \
			-ldflags "-s -w -X $module/internal/version.version=$version" \
			-o "$work/helm" "$module/cmd/helm" >&2
		mkdir -p "$dir"
		# Rename within the cache directory so that a concurrent or
		# interrupted build never leaves a half-written binary at $bin.
		cp "$work/helm" "$dir/helm.tmp.$$"
		mv "$dir/helm.tmp.$$" "$bin"
	) || status=$?
	rm -rf "$work"
	if ((status != 0)); then
		tools_log "helm $version: build failed (exit $status)"
		return "$status"
	fi
	tools_log "helm $version: built in $((SECONDS - start))s, cached at $bin"
	printf '%s\n' "$bin"
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
	local version="$KUBE_VERSION"
	local dir="$TOOLS_CACHE/kube-$version"
	if [[ ! -x "$dir/kube-apiserver" ]]; then
		local work start=$SECONDS status=0
		work="$(mktemp -d "${TMPDIR:-/tmp}/image-swapper-kube-$version.XXXXXX")" || return 1
		tools_log "kube-apiserver $version: building in $work (8-12 minutes on 2 cores)"
		(
			set -e
			cd "$work"
			export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
			go mod init image-swapper.tools/kube >/dev/null 2>&1
			# k8s.io/kubernetes replaces its staging modules with local
			# paths; a module that requires it must name their versions.
			local staging="v0${version#v1}"
			go mod download -json "k8s.io/kubernetes@$version" >info.json
			local gomod
			gomod="$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' info.json)"
			go mod edit -require "k8s.io/kubernetes@$version"
			grep -E '^\s*k8s.io/[^ ]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
				go mod edit -replace "$m=$m@$staging"
			done
			go get "k8s.io/kubernetes/cmd/kube-apiserver@$version" >&2
			go build -trimpath -ldflags "-s -w" -o "$work/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
			mkdir -p "$dir"
			cp "$work/kube-apiserver" "$dir/kube-apiserver.tmp.$$"
			mv "$dir/kube-apiserver.tmp.$$" "$dir/kube-apiserver"
		) || status=$?
		rm -rf "$work"
		if ((status != 0)); then
			tools_log "kube-apiserver $version: build failed (exit $status)"
			return "$status"
		fi
		tools_log "kube-apiserver $version: built in $((SECONDS - start))s"
	fi
	if [[ ! -x /usr/bin/etcd ]]; then
		tools_log "etcd: installing Debian's etcd-server"
		if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server; } >&2; then
			tools_log "etcd: apt-get install etcd-server failed"
			return 1
		fi
	fi
	ln -sf /usr/bin/etcd "$dir/etcd"
	printf '%s\n' "$dir"
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
	*)
		cat >&2 <<USAGE
usage: $0 helm [VERSION...]
  helm             build Helm $HELM3_VERSION and $HELM4_VERSION; print IMAGE_SWAPPER_HELM3/4 exports
  helm VERSION...  build the given Helm versions; print their paths
  kube             build kube-apiserver $KUBE_VERSION, install etcd; print the KUBEBUILDER_ASSETS export
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
