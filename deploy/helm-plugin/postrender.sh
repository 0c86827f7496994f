#!/bin/sh
# Runs "image-swapper rewrite" as a Helm post-renderer: manifests arrive on
# stdin and leave, swapped, on stdout.
#
# Arguments are passed to "image-swapper rewrite" as they are
# (helm ... --post-renderer-args --config --post-renderer-args FILE).
# Without --config among them, IMAGE_SWAPPER_CONFIG names the config file.
# The binary is IMAGE_SWAPPER_BIN, else bin/image-swapper beside this script,
# else image-swapper on PATH.
set -u

die() {
	report "image-swapper helm plugin: $*"
	exit 2
}

# report shows a message to the person running helm. Helm 4 (4.3.1 at least)
# collects a postrenderer/v1 plugin's stderr and never prints it, not even
# with --debug, which would hide why an image was denied. When run by Helm 4
# (it sets HELM_PLUGIN_NAME) the message therefore goes to helm's own stderr,
# reached through /proc. That is safe for a pipe, a terminal, a socket or a
# file helm appends to; a file opened without O_APPEND ("2>file") is not:
# helm's next write at its own offset would overwrite the message. Anywhere
# else (Helm 3 running this script, macOS) it goes to our stderr.
report() {
	if [ -n "${HELM_PLUGIN_NAME:-}" ] && helm_stderr_is_shared; then
		printf '%s\n' "$*" >>"/proc/${PPID}/fd/2" && return
	fi
	printf '%s\n' "$*" >&2
}

helm_stderr_is_shared() {
	fd="/proc/${PPID}/fd/2"
	[ -w "$fd" ] || return 1
	[ -p "$fd" ] || [ -c "$fd" ] || [ -S "$fd" ] && return 0
	[ -f "$fd" ] || return 1
	# fdinfo prints the open flags in octal; 02000 is O_APPEND.
	flags=$(sed -n 's/^flags:[[:space:]]*//p' "/proc/${PPID}/fdinfo/2" 2>/dev/null)
	case "$flags" in
	'' | *[!0-7]*) return 1 ;;
	esac
	[ $((0$flags & 02000)) -ne 0 ]
}

has_config=false
for arg in "$@"; do
	case "$arg" in
	--config | --config=* | -c | -c?*) has_config=true ;;
	esac
done
if [ "$has_config" = false ]; then
	if [ -z "${IMAGE_SWAPPER_CONFIG:-}" ]; then
		die "no configuration: set IMAGE_SWAPPER_CONFIG=FILE or pass --post-renderer-args --config --post-renderer-args FILE"
	fi
	set -- --config "$IMAGE_SWAPPER_CONFIG" "$@"
fi

bin="${IMAGE_SWAPPER_BIN:-}"
if [ -z "$bin" ]; then
	if [ -n "${HELM_PLUGIN_DIR:-}" ] && [ -x "${HELM_PLUGIN_DIR}/bin/image-swapper" ]; then
		bin="${HELM_PLUGIN_DIR}/bin/image-swapper"
	elif command -v image-swapper >/dev/null 2>&1; then
		bin="image-swapper"
	else
		die "image-swapper not found: put it on PATH, in ${HELM_PLUGIN_DIR:-the plugin directory}/bin, or set IMAGE_SWAPPER_BIN"
	fi
fi

# stdout goes straight to helm; stderr is captured so that report can show it.
exec 3>&1
messages=$("$bin" rewrite "$@" 2>&1 1>&3 3>&-)
status=$?
exec 3>&-
if [ -n "$messages" ]; then
	report "$messages"
fi
exit "$status"
