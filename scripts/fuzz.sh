#!/usr/bin/env bash
# Runs every Go fuzz target of the repository for FUZZTIME each, FUZZJOBS
# targets at a time (make fuzz sets both). Fails if any target found a
# crash; Go writes the input under the package's testdata/fuzz/FuzzXxx/,
# where plain go test replays it: commit it with the fix.
set -u
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZJOBS=${FUZZJOBS:-1}
read -r -a FLAGS <<<"${FUZZFLAGS:-}"

targets=()
for file in $(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do
	pkg=./$(dirname "${file#./}")
	for t in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		targets+=("$pkg $t")
	done
done

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
run() {
	local pkg=$1 t=$2
	if "$GO" test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "${FLAGS[@]}" "$pkg" >"$logs/$t.log" 2>&1; then
		echo "== $pkg $t ($FUZZTIME): ok — $(grep -o 'execs: [0-9]*.*' "$logs/$t.log" | tail -1)"
	else
		echo "== $pkg $t ($FUZZTIME): FAILED"
		cat "$logs/$t.log"
		touch "$logs/failed"
	fi
}

running=0
for entry in "${targets[@]}"; do
	read -r pkg t <<<"$entry"
	run "$pkg" "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$FUZZJOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait
if [ -e "$logs/failed" ]; then
	echo "make fuzz: a target found a crash (see above)"
	exit 1
fi
echo "make fuzz: ${#targets[@]} targets, $FUZZTIME each, no crash"
