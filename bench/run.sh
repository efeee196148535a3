#!/usr/bin/env bash
# make bench: Go micro-benchmarks, then the end-to-end sweep of tmsd against
# goflow2 v2.2.6 and nfcapd (sfacctd for sFlow) with the same generator
# (cmd/flowgen), for NetFlow v5, v9, IPFIX and sFlow v5, then tmsd's
# cardinality and query-under-load runs; writes the report.
#
#   bash bench/run.sh                 # full: < 30 min, writes docs/BENCHMARKS.md
#   BENCH_QUICK=1 bash bench/run.sh   # ~4 min, writes bench/out/BENCHMARKS.quick.md
#
# Environment: BENCH_QUICK=1 (short sweep), BENCH_DOC=FILE (where the report
# goes), BENCH_E2E_FLAGS="..." (extra flags for bench/e2e, e.g.
# "-formats v9 -collectors tmsd,goflow2"), BENCH_RCVBUF (socket buffer bytes,
# default 33554432), BENCH_SKIP_MICRO=1.
#
# It installs nfdump with apt-get if nfcapd is missing, raises
# net.core.rmem_max to BENCH_RCVBUF for the run if it is lower (restored on
# exit), and sends traffic to 127.0.0.1 only. Binaries go to bench/out/bin.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
cd "$ROOT"
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
GO=${GO:-go}

QUICK=${BENCH_QUICK:-}
OUT=$HERE/out
BIN=$OUT/bin
RCVBUF=${BENCH_RCVBUF:-33554432}
GOFLOW2_VERSION=v2.2.6
if [ -n "$QUICK" ]; then
	DOC=${BENCH_DOC:-$OUT/BENCHMARKS.quick.md}
	E2E_BUDGET=200s
	# + ~40 s for the query-load run (-query-duration 15s in -quick), ~10 s
	# for the generator alone (-gen-max 2s per format)
	E2E_TIMEOUT=380
	MICRO_FLAGS=(-benchtime 200ms)
else
	DOC=${BENCH_DOC:-$ROOT/docs/BENCHMARKS.md}
	E2E_BUDGET=23m
	# + ~100 s for the query-load run (seeding, baseline, 60 s under ingest),
	# ~20 s for the generator alone (-gen-max 3s per format), ~360 s for the
	# alert-load run (twice 150 s of sending, and start-up)
	E2E_TIMEOUT=2100
	MICRO_FLAGS=()
fi
mkdir -p "$BIN"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- tools ---------------------------------------------------------------
if ! command -v nfcapd >/dev/null 2>&1 || ! command -v nfdump >/dev/null 2>&1; then
	log "installing nfdump (nfcapd)"
	apt-get install -y nfdump >/dev/null || { apt-get update >/dev/null && apt-get install -y nfdump >/dev/null; } ||
		log "warning: nfdump could not be installed; nfcapd will be reported n/a"
fi
if ! command -v sfacctd >/dev/null 2>&1; then
	log "installing pmacct (sfacctd)"
	apt-get install -y pmacct >/dev/null || { apt-get update >/dev/null && apt-get install -y pmacct >/dev/null; } ||
		log "warning: pmacct could not be installed; the sFlow peer will be reported n/a"
fi
command -v taskset >/dev/null 2>&1 || log "note: taskset missing; the generator is not pinned and the 1-core row is n/a"

# --- build -----------------------------------------------------------------
[ -f cmd/flowgen/main.go ] || die "cmd/flowgen is missing: the generator is needed"
log "building tmsd, flowgen, bench/e2e; goflow2 $GOFLOW2_VERSION"
$GO build -o "$BIN/tmsd" ./cmd/tmsd
$GO build -o "$BIN/flowgen" ./cmd/flowgen
$GO build -o "$BIN/e2e" ./bench/e2e
GOBIN=$BIN $GO install "github.com/netsampler/goflow2/v2/cmd/goflow2@$GOFLOW2_VERSION"

# --- socket buffers ----------------------------------------------------------
RMEM_OLD=$(sysctl -n net.core.rmem_max 2>/dev/null || echo 0)
RMEM_NOTE="net.core.rmem_max was $RMEM_OLD (not changed)"
restore() {
	if [ "${RMEM_SET:-}" = 1 ]; then
		sysctl -qw net.core.rmem_max="$RMEM_OLD" && log "net.core.rmem_max restored to $RMEM_OLD"
	fi
}
trap restore EXIT
if [ "$RMEM_OLD" -lt "$RCVBUF" ]; then
	if sysctl -qw net.core.rmem_max="$RCVBUF" 2>/dev/null; then
		RMEM_SET=1
		RMEM_NOTE="net.core.rmem_max raised from $RMEM_OLD to $RCVBUF for the run and restored after"
		log "$RMEM_NOTE"
	else
		RMEM_NOTE="net.core.rmem_max is $RMEM_OLD and could not be raised: socket buffers are capped there"
		log "warning: $RMEM_NOTE"
	fi
fi

# --- facts for the report ----------------------------------------------------
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	COMMIT="$COMMIT (with uncommitted changes)"
fi
CPU_MODEL=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
CORES=$(nproc)
KERNEL=$(uname -r)
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
GOVER=$($GO env GOVERSION)
# A peer missing gives an empty version, not a failed pipeline (set -e).
NFDUMP_V=$( (nfdump -V 2>&1 || true) | { grep -o '[0-9][0-9.]*[0-9]' || true; } | tail -1)
PMACCT_V=$( (sfacctd -V 2>&1 || true) | { grep -o 'sfacctd [0-9][^ ]*' || true; } | head -1 | cut -d' ' -f2)
GOFLOW2_V=$($GO version -m "$BIN/goflow2" | awk '$1 == "mod" {print $3}')

# --- micro-benchmarks -----------------------------------------------------
MICRO_ARGS=(-run '^$' -bench . -benchmem "${MICRO_FLAGS[@]}" ./internal/...)
MICRO_CMD="go test -run '^\$' -bench . -benchmem ${MICRO_FLAGS[*]}${MICRO_FLAGS[*]:+ }./internal/..."
if [ -z "${BENCH_SKIP_MICRO:-}" ]; then
	log "micro-benchmarks: $MICRO_CMD"
	$GO test "${MICRO_ARGS[@]}" 2>&1 | tee "$OUT/micro.txt" || die "micro-benchmarks failed"
else
	echo "(skipped: BENCH_SKIP_MICRO)" >"$OUT/micro.txt"
fi

# --- end to end --------------------------------------------------------------
E2E_ARGS=(-bin "$BIN" -budget "$E2E_BUDGET" -rcvbuf "$RCVBUF" -md "$OUT/e2e.md" -json "$OUT/e2e.json")
[ -n "$QUICK" ] && E2E_ARGS+=(-quick)
# Parsed as shell words, quotes included, so that -scaling "" is an empty
# list and -gen-flags '-tuple-repeat 11' one argument (plain word splitting
# passed the two quote characters on).
eval "E2E_ARGS+=(${BENCH_E2E_FLAGS:-})"
log "end to end: bench/e2e ${E2E_ARGS[*]}"
set +e
timeout --signal=INT --kill-after=30s "$E2E_TIMEOUT" "$BIN/e2e" "${E2E_ARGS[@]}" >/dev/null
E2E_RC=$?
set -e
[ -s "$OUT/e2e.md" ] || die "bench/e2e wrote no report (exit $E2E_RC)"
[ "$E2E_RC" -eq 0 ] || log "warning: bench/e2e exited $E2E_RC; the report may be partial"

# --- report -------------------------------------------------------------------
if [ -n "$QUICK" ]; then
	CMD="BENCH_QUICK=1 make bench"
	KIND="the quick sweep: 1 s per step, rates doubling from 200,000 flows/s, indicative only"
else
	CMD="make bench"
	KIND="the full sweep"
fi
[ -n "${BENCH_E2E_FLAGS:-}" ] && CMD="BENCH_E2E_FLAGS='${BENCH_E2E_FLAGS}' $CMD"
mkdir -p "$(dirname "$DOC")"
{
	cat <<EOF
# Benchmarks

Produced by \`$CMD\` ($KIND); \`bench/run.sh\` writes this file, do not edit it by hand.
\`make bench-micro\` runs only the Go micro-benchmarks; \`BENCH_QUICK=1 make bench\` is a
~4-minute version of the whole thing (its report goes to \`bench/out/BENCHMARKS.quick.md\`).

- Date: $DATE
- Commit: $COMMIT
- Machine: $CPU_MODEL, $CORES CPUs, $MEM, Linux $KERNEL; $GOVER
- Peers: goflow2 $GOFLOW2_V (built from the module with \`go install\`), nfdump/nfcapd $NFDUMP_V (Debian), pmacct sfacctd $PMACCT_V (Debian)
- Socket buffers: $RMEM_NOTE
- End-to-end command: \`bench/e2e ${E2E_ARGS[*]//$ROOT\//}\`

## End to end: tmsd vs goflow2 vs nfcapd

One generator (\`cmd/flowgen\`, its backbone workload unless the sweep line below says
otherwise) sends each format from 4 loopback exporters
(127.0.0.2–5) to one collector at a time on 127.0.0.1, at rising rates, until
the collector counts more than 0.1 % fewer flows than were sent (sFlow: flow
samples) or is still catching up more than 1 s after sending stopped. Each step restarts the collector with a fresh data directory, sends
for a fixed time (bounded by a flow count as well), waits until the collector's
count stops rising (at most 10 s) and reads it. "Max loss-free" is the rate the
generator achieved (not the target) in the fastest passing step. "≥ … (generator-bound)"
means the generator could not go faster on this 2-CPU machine while sharing it
with the collector, so the collector's own limit was not reached.
The tmsd exactness check compares, at that step, tmsd's totals (bytes, packets,
flows) and its top-10 \`srcip\` and \`dstport\` with the generator's truth file.

EOF
	cat "$OUT/e2e.md"
	cat <<EOF

## Go micro-benchmarks

\`$MICRO_CMD\`

\`\`\`
EOF
	cat "$OUT/micro.txt"
	echo '```'
} >"$DOC.tmp"
mv "$DOC.tmp" "$DOC"
log "report written to ${DOC#"$ROOT"/}"
echo
sed -n '/^| Format | Collector/,/^$/p' "$OUT/e2e.md"
sed -n '/^| Format | tmsd/,/^$/p' "$OUT/e2e.md"
exit "$E2E_RC"
