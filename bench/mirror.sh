#!/usr/bin/env bash
# Mirroring benchmark. In one run it starts two Distribution registries
# (Debian's docker-registry 2.8.2) on 127.0.0.1, seeds the first with one
# multi-arch image (3 platforms x 5 layers of random bytes, ~198 MiB), and
# copies that image to the second with `image-swapper mirror`, `crane copy`
# and `skopeo copy --all`, RUNS times each. Every copy goes to a repository
# no earlier copy used, so each one sends every blob; rounds interleave the
# tools (in a rotating order) so that a noisy machine slows all of them
# alike. After each copy it checks that the target has the source's index
# digest and every child manifest, and counts blob mounts (a copy that
# mounts did not copy). Then it times `image-swapper mirror` of the image
# it already copied and lists the requests that costs at each registry.
#
# Usage: bench/mirror.sh [RUNS]        RUNS copies per tool, default 5 (1-50)
#
# Environment:
#   RUNS              as the argument
#   REMIRROR_RUNS     timed re-mirrors of the present image (default 10)
#   BENCH_PLATFORMS   platforms of the seeded index (default linux/amd64,linux/arm64,linux/ppc64le)
#   BENCH_LAYERS_MIB  layer sizes of each platform's image in MiB (default 32,16,8,6,4)
#   RUN_TIMEOUT       seconds one command may take before the benchmark stops (default 600)
#   CRANE_FLAGS       extra flags for crane copy, e.g. "--jobs 4" (default none)
#   BENCH_ARTIFACT_TYPE=1  seed index descriptors with artifactType (as
#                     go-containerregistry v0.22 writes them); skopeo 1.9.3
#                     drops the field, so its copies get another index digest
#   KEEP_WORK=1       keep the work directory (registry logs and storage)
#
# Needs go, curl, docker-registry and skopeo (installed with apt when missing)
# and crane (built into ~/.cache/image-swapper by .ci/tools.sh). Everything
# it starts it stops, and it removes its work directory, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${1:-${RUNS:-5}}"
REMIRROR_RUNS="${REMIRROR_RUNS:-10}"
BENCH_PLATFORMS="${BENCH_PLATFORMS:-linux/amd64,linux/arm64,linux/ppc64le}"
BENCH_LAYERS_MIB="${BENCH_LAYERS_MIB:-32,16,8,6,4}"
RUN_TIMEOUT="${RUN_TIMEOUT:-600}"
read -r -a CRANE_FLAGS <<<"${CRANE_FLAGS:-}"
TOOLS=(image-swapper crane skopeo)

die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}
note() {
	printf 'bench: %s\n' "$*" >&2
}

# in_range NAME VALUE MIN MAX fails unless VALUE is a whole number in range.
in_range() {
	if ! [[ "$2" =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
		die "$1=$2: want a whole number from $3 to $4"
	fi
}
in_range RUNS "$RUNS" 1 50
in_range REMIRROR_RUNS "$REMIRROR_RUNS" 1 100
in_range RUN_TIMEOUT "$RUN_TIMEOUT" 1 86400

# shellcheck source-path=SCRIPTDIR/.. source=.ci/tools.sh
. .ci/tools.sh
tools_apt docker-registry skopeo curl || die "cannot install docker-registry, skopeo and curl"
CRANE="$(tools_crane)" || die "cannot build crane"
REGISTRY_BIN=/usr/bin/docker-registry

work="$(mktemp -d "${TMPDIR:-/tmp}/image-swapper-bench.XXXXXX")"
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ "${KEEP_WORK:-}" == 1 ]]; then
		note "kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note "building image-swapper and the seeder"
go build -o "$work/image-swapper" ./cmd/image-swapper
go build -o "$work/seed" ./bench/seed
SWAPPER="$work/image-swapper"

# start_registry NAME starts a docker-registry on a free 127.0.0.1 port with
# storage and access log under $work/NAME, and sets REGISTRY to its host.
start_registry() {
	local name="$1" dir="$work/$1" attempt port pid
	mkdir -p "$dir"
	for attempt in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		# Something answers on the port: try another.
		if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			continue
		fi
		cat >"$dir/config.yml" <<-EOF
			version: 0.1
			log:
			  level: error
			  formatter: text
			storage:
			  filesystem:
			    rootdirectory: $dir/storage
			http:
			  addr: 127.0.0.1:$port
			  secret: image-swapper-bench
		EOF
		"$REGISTRY_BIN" serve "$dir/config.yml" >"$dir/log" 2>&1 &
		pid=$!
		pids+=("$pid")
		local i
		for ((i = 0; i < 100; i++)); do
			if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
				REGISTRY="127.0.0.1:$port"
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		note "registry $name on port $port did not start (attempt $attempt): $(tail -n 3 "$dir/log")"
	done
	die "cannot start docker-registry for $name"
}

# access_lines NAME prints the access-log lines of registry NAME so far:
# `METHOD URI STATUS`, one a line.
access_lines() {
	# Combined log format: 127.0.0.1 - - [date] "METHOD URI HTTP/1.1" STATUS SIZE ...
	awk '$1 ~ /^[0-9.]+$/ && $6 ~ /^"[A-Z]+$/ {print substr($6, 2), $7, $9}' "$work/$1/log"
}

start_registry src
SRC="$REGISTRY"
start_registry dst
DST="$REGISTRY"
note "registries: source $SRC, target $DST"

SOURCE_REF="$SRC/src/big:1.0"
note "seeding $SOURCE_REF ($BENCH_PLATFORMS; layers of $BENCH_LAYERS_MIB MiB each)"
seed_flags=(-insecure -ref "$SOURCE_REF" -platforms "$BENCH_PLATFORMS" -layers-mib "$BENCH_LAYERS_MIB")
[[ "${BENCH_ARTIFACT_TYPE:-}" != 1 ]] || seed_flags+=(-artifact-type)
SOURCE_DIGEST="$(timeout "$RUN_TIMEOUT" "$work/seed" "${seed_flags[@]}")" ||
	die "seeding failed"
index="$("$CRANE" manifest --insecure "$SOURCE_REF")"
mapfile -t CHILDREN < <(grep -o '"digest": *"sha256:[0-9a-f]\{64\}"' <<<"$index" | grep -o 'sha256:[0-9a-f]*')
((${#CHILDREN[@]} > 0)) || die "the seeded index lists no manifests: $index"
# Bytes of the image: the index, and each manifest with the config and
# layers its "size" fields count.
IMAGE_BYTES=${#index}
for c in "${CHILDREN[@]}"; do
	m="$("$CRANE" manifest --insecure "$SRC/src/big@$c")"
	IMAGE_BYTES=$((IMAGE_BYTES + ${#m} + $(grep -o '"size": *[0-9]*' <<<"$m" | grep -o '[0-9]*$' | awk '{s += $1} END {print s + 0}')))
done

# A policy that accepts any image, so skopeo needs no /etc/containers/policy.json.
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$work/policy.json"

# target TOOL RUN is the reference TOOL's copy number RUN goes to.
target() {
	case "$1" in
	# image-swapper's default rule keeps the source host, ":" written "_".
	image-swapper) printf '%s/isw-%s/%s/src/big:1.0' "$DST" "$2" "${SRC//:/_}" ;;
	*) printf '%s/%s-%s/src/big:1.0' "$DST" "$1" "$2" ;;
	esac
}

# copy_with TOOL RUN copies the source image to target TOOL RUN.
copy_with() {
	local tool="$1" run="$2" dst
	dst="$(target "$tool" "$run")"
	case "$tool" in
	image-swapper)
		# A config per run: the target registry path is what makes the
		# repository fresh.
		printf 'sourceRegistries: ["%s"]\ntargetRegistry: "%s/isw-%s"\nregistries:\n  "%s": {insecure: true}\n  "%s": {insecure: true}\n' \
			"$SRC" "$DST" "$run" "$SRC" "$DST" >"$work/isw-$run.yaml"
		timeout "$RUN_TIMEOUT" "$SWAPPER" mirror --config "$work/isw-$run.yaml" "$SOURCE_REF"
		;;
	crane)
		timeout "$RUN_TIMEOUT" "$CRANE" copy --insecure "${CRANE_FLAGS[@]}" "$SOURCE_REF" "$dst"
		;;
	skopeo)
		# skopeo remembers in a blob-info cache which repositories have
		# which blobs, and mounts from an earlier run's repository instead
		# of copying. A fresh cache per run prevents that; as root the
		# cache is /var/lib/containers/cache unless skopeo is told (with
		# containers/image's _CONTAINERS_ROOTLESS_UID) to use the
		# per-user XDG_DATA_HOME one. The mount count below checks it.
		local uid="$EUID"
		((uid != 0)) || uid=1
		_CONTAINERS_ROOTLESS_UID="$uid" XDG_DATA_HOME="$work/skopeo-data-$run" \
			timeout "$RUN_TIMEOUT" skopeo copy --all --quiet --src-no-creds --dest-no-creds \
			--policy "$work/policy.json" --src-tls-verify=false --dest-tls-verify=false \
			"docker://$SOURCE_REF" "docker://$dst"
		;;
	esac
}

# verify TOOL RUN prints "equal", or what differs between the source and
# target TOOL RUN.
verify() {
	local dst repo got c problems=()
	dst="$(target "$1" "$2")"
	repo="${dst%:*}"
	got="$("$CRANE" digest --insecure "$dst" 2>&1)" || got="missing ($got)"
	[[ "$got" == "$SOURCE_DIGEST" ]] || problems+=("index $got")
	for c in "${CHILDREN[@]}"; do
		got="$("$CRANE" digest --insecure "$repo@$c" 2>/dev/null)" || got="missing"
		[[ "$got" == "$c" ]] || problems+=("child ${c:7:12} $got")
	done
	if ((${#problems[@]} == 0)); then
		echo equal
	else
		local IFS=';'
		echo "DIFFERENT: ${problems[*]}"
	fi
}

now_ms() {
	local ns
	ns="$(date +%s%N)"
	echo $((ns / 1000000))
}

loadavg() {
	cut -d' ' -f1-3 /proc/loadavg
}

results="$work/results.tsv" # tool run ms load1 mounts verdict cpu_ms
TIMEFORMAT='%3R %3U %3S'
: >"$results"
LOAD_START="$(loadavg)"
note "image: $(awk -v b="$IMAGE_BYTES" 'BEGIN {printf "%.1f MiB", b / 1048576}'), ${#CHILDREN[@]} platforms, digest $SOURCE_DIGEST"
note "$RUNS rounds of ${TOOLS[*]} (load average now $LOAD_START)"
for ((run = 1; run <= RUNS; run++)); do
	for ((k = 0; k < ${#TOOLS[@]}; k++)); do
		tool="${TOOLS[$(((run - 1 + k) % ${#TOOLS[@]}))]}"
		load1="$(cut -d' ' -f1 /proc/loadavg)"
		before="$(access_lines dst | wc -l)"
		status=0
		# Wall-clock time, and the CPU time of the tool's process (not
		# the registries'): steadier than wall-clock on a busy machine.
		{ time copy_with "$tool" "$run" >"$work/$tool-$run.log" 2>&1; } 2>"$work/time" || status=$?
		read -r real user sys <"$work/time"
		ms="$(awk -v r="$real" 'BEGIN {printf "%d", r * 1000}')"
		cpu_ms="$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%d", (u + s) * 1000}')"
		if ((status != 0)); then
			cat "$work/$tool-$run.log" >&2
			die "$tool, run $run: exit $status (above is its output)"
		fi
		sleep 0.2 # the registry logs a request after it has answered it
		mounts="$(access_lines dst | tail -n +"$((before + 1))" | grep -c '^POST .*[?&]mount=.* 201$' || true)"
		verdict="$(verify "$tool" "$run")"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$run" "$ms" "$load1" "$mounts" "$verdict" "$cpu_ms" >>"$results"
		note "run $run: $tool $(awk -v ms="$ms" -v cpu="$cpu_ms" 'BEGIN {printf "%.2f s (CPU %.2f s)", ms / 1000, cpu / 1000}') (load $load1, mounts $mounts, digests $verdict)"
	done
done

# Re-mirroring the image image-swapper copied in run 1: it is present.
note "re-mirroring a present image $REMIRROR_RUNS times"
remirror="$work/remirror.tsv" # kind ms
: >"$remirror"
src_before="$(access_lines src | wc -l)"
dst_before="$(access_lines dst | wc -l)"
"$SWAPPER" mirror --config "$work/isw-1.yaml" "$SOURCE_REF" >"$work/remirror.log" 2>&1 ||
	die "re-mirror failed: $(cat "$work/remirror.log")"
grep -q '0 copied, 1 already present, 0 failed' "$work/remirror.log" ||
	die "re-mirror did not find the image present: $(cat "$work/remirror.log")"
sleep 0.2
REMIRROR_SRC_REQS="$(access_lines src | tail -n +"$((src_before + 1))")"
REMIRROR_DST_REQS="$(access_lines dst | tail -n +"$((dst_before + 1))")"
for ((i = 1; i <= REMIRROR_RUNS; i++)); do
	start="$(now_ms)"
	timeout "$RUN_TIMEOUT" "$SWAPPER" mirror --config "$work/isw-1.yaml" "$SOURCE_REF" >/dev/null 2>&1 || die "re-mirror $i failed"
	printf 'remirror\t%s\n' "$(($(now_ms) - start))" >>"$remirror"
	# The floor for any Go CLI that asks a registry one question: a
	# process start, a /v2/ ping and one HEAD.
	start="$(now_ms)"
	timeout "$RUN_TIMEOUT" "$CRANE" digest --insecure "$(target image-swapper 1)" >/dev/null
	printf 'crane-digest\t%s\n' "$(($(now_ms) - start))" >>"$remirror"
	start="$(now_ms)"
	"$SWAPPER" version >/dev/null
	printf 'version\t%s\n' "$(($(now_ms) - start))" >>"$remirror"
done
LOAD_END="$(loadavg)"

# median reads numbers, one a line, and prints their median.
median() {
	sort -n | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
med() { # TOOL [COLUMN]: the median wall-clock ms, or of COLUMN
	awk -F'\t' -v t="$1" -v c="${2:-3}" '$1 == t {print $c}' "$results" | median
}
remed() { # KIND
	awk -F'\t' -v k="$1" '$1 == k {print $2}' "$remirror" | median
}

# label TOOL is the command TOOL's rows stand for.
label() {
	case "$1" in
	image-swapper) echo "image-swapper mirror" ;;
	crane) echo "crane copy${CRANE_FLAGS[*]:+ ${CRANE_FLAGS[*]}}" ;;
	skopeo) echo "skopeo copy --all" ;;
	esac
}

crane="$(med crane)"
skopeo="$(med skopeo)"

echo "## Mirroring benchmark: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- command: ${CRANE_FLAGS[*]:+CRANE_FLAGS=\"${CRANE_FLAGS[*]}\" }bench/mirror.sh $RUNS (REMIRROR_RUNS=$REMIRROR_RUNS)"
echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory, $(uname -sr)"
echo "- load average (1, 5, 15 min): $LOAD_START at the start, $LOAD_END at the end; 1-min load when each copy started: $(cut -f4 "$results" | sort -n | head -1)-$(cut -f4 "$results" | sort -n | tail -1)"
echo "- registries: Debian's docker-registry (Distribution $("$REGISTRY_BIN" --version | awk '{print $NF}')), filesystem storage, plain HTTP on 127.0.0.1"
echo "- image: OCI index, ${#CHILDREN[@]} platforms ($BENCH_PLATFORMS), layers of $BENCH_LAYERS_MIB MiB of random bytes each; $(awk -v b="$IMAGE_BYTES" 'BEGIN {printf "%.1f MiB (%d bytes)", b / 1048576, b}') in all"
echo "- tools: $("$SWAPPER" version 2>/dev/null | head -1), crane $("$CRANE" version), $(skopeo --version)"
echo "- each tool: $RUNS full copies to fresh repositories, interleaved; crane with default settings unless CRANE_FLAGS says otherwise (--jobs = GOMAXPROCS = $(nproc)); image-swapper uploads 4 blobs at once"
echo
echo "| tool | median | min | max | MiB/s (median) | vs crane | vs skopeo | CPU (median) | blob mounts | digests |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for tool in "${TOOLS[@]}"; do
	m="$(med "$tool")"
	awk -F'\t' -v t="$tool" -v m="$m" -v c="$crane" -v s="$skopeo" -v b="$IMAGE_BYTES" -v cmd="$(label "$tool")" -v cpu="$(med "$tool" 7)" '
		$1 == t {
			n++; mounts += $5
			if (min == "" || $3 < min) min = $3
			if ($3 > max) max = $3
			if ($6 != "equal") { v = $6; sub(/^DIFFERENT: /, "", v); bad = bad " run " $2 ": " v }
		}
		END {
			printf "| %s | %.2f s | %.2f s | %.2f s | %.0f | %.2fx | %.2fx | %.2f s | %d | %s |\n",
				cmd, m / 1000, min / 1000, max / 1000, b / 1048576 / (m / 1000), m / c, m / s, cpu / 1000, mounts,
				bad == "" ? "equal in all " n " runs" : "DIFFERENT:" bad
		}' "$results"
done
echo
echo "Ratios are median / median (below 1.00x: faster than that tool). CPU is the user + system time of the tool's own process."
echo
# round_ratio A B: the median over rounds of A's time / B's time in the same
# round. The tools of one round run back to back and share the machine's
# load of the moment, so this is steadier than a ratio of medians.
round_ratio() {
	awk -F'\t' -v a="$1" -v b="$2" '$1 == a {x[$2] = $3} $1 == b {y[$2] = $3} END {for (r in x) if (y[r] > 0) print x[r] / y[r]}' "$results" |
		median | awk '{printf "%.2fx", $1}'
}
echo "Per-round ratios (median over rounds of the two tools' times in the same round): image-swapper / crane $(round_ratio image-swapper crane), image-swapper / skopeo $(round_ratio image-swapper skopeo)."
echo
echo "Re-mirroring the image already present (medians of $REMIRROR_RUNS runs; each a new process):"
echo
echo "| command | median |"
echo "|---|---|"
printf '| image-swapper mirror (image present) | %s ms |\n' "$(remed remirror)"
printf '| crane digest (one HEAD; a floor for one question) | %s ms |\n' "$(remed crane-digest)"
printf '| image-swapper version (process start only) | %s ms |\n' "$(remed version)"
echo
echo "Requests of one re-mirror, from the registries' access logs:"
echo
echo '```'
echo "source ($SRC):"
awk '{print "  " $0}' <<<"$REMIRROR_SRC_REQS"
echo "target ($DST):"
awk '{print "  " $0}' <<<"$REMIRROR_DST_REQS"
echo '```'
echo
echo "Per run (wall-clock ms / CPU ms; 1-min load at its start):"
echo
echo '```'
for tool in "${TOOLS[@]}"; do
	printf '%-14s %s\n' "$tool" "$(awk -F'\t' -v t="$tool" '$1 == t {printf "%s%s/%s (%s)", sep, $3, $7, $4; sep = ", "}' "$results")"
done
echo '```'
