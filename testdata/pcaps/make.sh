#!/usr/bin/env bash
# Regenerates everything in testdata/pcaps/ from scratch:
#   ../traces/trace.pcap            synthetic packet trace (gentrace/main.go);
#                                   raw packets, not flow export: kept out of
#                                   testdata/pcaps so *.pcap there is all export
#   ../traces/public.pcap           the small second trace with public
#                                   addresses (gentrace -profile public)
#   <exporter>-<proto>.pcap         export datagrams of real exporters reading
#                                   trace.pcap (softflowd-v9-public: public.pcap),
#                                   captured by tcpdump on lo
#   <same>.golden.txt / .json       answers of independent collectors that
#                                   received exactly those datagrams
# See README.md. Needs root (tcpdump on lo, apt-get). Takes ~3 minutes.
#
#   bash make.sh                    everything (deletes all outputs first)
#   bash make.sh STEP...            only these steps, in the order given,
#                                   leaving every other file alone (an
#                                   exporter step reads the existing trace.pcap,
#                                   softflowd-v9-public the existing public.pcap)
#   bash make.sh -l                 list the steps
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TOP=20 # rows per golden list

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'make.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=
need() { # need COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	log "installing $2"
	if ! apt-get install -y "$2" >/dev/null; then
		[ -n "$APT_UPDATED" ] || { apt-get update >/dev/null; APT_UPDATED=1; }
		apt-get install -y "$2" >/dev/null
	fi
}
need softflowd softflowd
need nfcapd nfdump
need nfdump nfdump
need pmacctd pmacct
need sfacctd pmacct
need tcpdump tcpdump
need tshark tshark
need ss iproute2
need python3 python3
need pgrep procps
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || die "go not found"

NFDUMP_VERSION=$(nfdump -V 2>&1 | grep -o '[0-9][0-9.]*$' | head -1)
SOFTFLOWD_VERSION=$(softflowd -h 2>&1 | grep -o 'softflowd version [0-9.]*[0-9]' | head -1 | cut -d' ' -f3)
PMACCT_VERSION=$(pmacctd -V 2>&1 | grep -o 'pmacctd [0-9][^ ]*' | head -1 | cut -d' ' -f2)
SFACCTD_VERSION=$(sfacctd -V 2>&1 | grep -o 'sfacctd [0-9][^ ]*' | head -1 | cut -d' ' -f2)
log "nfdump $NFDUMP_VERSION, softflowd $SOFTFLOWD_VERSION, pmacctd $PMACCT_VERSION, sfacctd $SFACCTD_VERSION"

WORK=$(mktemp -d /tmp/tmsd-pcaps.XXXXXX)
PIDS=()
cleanup() {
	local p c
	for p in "${PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null || continue
		for c in $(pgrep -P "$p"); do kill -INT "$c" 2>/dev/null || true; done # pmacct plugins
		kill -TERM "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

# wait_for FILE PATTERN [TENTHS]: wait (default max 20 s) until FILE contains PATTERN.
wait_for() {
	local i
	for i in $(seq "${3:-200}"); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	die "timeout waiting for '$2' in $1: $(cat "$1" 2>/dev/null)"
}
# wait_udp PORT: wait (max 20 s) until something listens on 127.0.0.1:PORT/udp.
wait_udp() {
	local i
	for i in $(seq 200); do
		ss -Hlun "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	die "nothing listens on udp port $1"
}
# wait_purged LOG: sfacctd's core may exit before its print plugins (child
# processes) have written their files; wait (max 60 s) until all six
# plugins logged the end of their final cache purge.
wait_purged() {
	local i
	for i in $(seq 600); do
		[ "$(grep -c 'Purging cache - END' "$1")" -ge 6 ] && { sleep 0.2; return 0; }
		sleep 0.1
	done
	die "sfacctd plugins did not finish: $(tail -5 "$1")"
}
# stop PID SIGNAL: signal one of our processes and wait for it to exit.
stop() {
	kill -"$2" "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# capture_start NAME PORT: tcpdump the datagrams sent to 127.0.0.1:PORT.
capture_start() {
	local name=$1 port=$2
	tcpdump -i lo -n -U -Z root -w "$WORK/$name.pcap" "udp and dst host 127.0.0.1 and dst port $port" \
		>"$WORK/$name.tcpdump.log" 2>&1 &
	TCPDUMP_PID=$!
	PIDS+=("$TCPDUMP_PID")
	wait_for "$WORK/$name.tcpdump.log" "listening on"
	sleep 0.5
}
capture_stop() {
	local name=$1
	sleep 2 # let the last datagrams reach tcpdump and the collector
	stop "$TCPDUMP_PID" INT
	grep -q '^0 packets dropped by kernel' "$WORK/$name.tcpdump.log" ||
		die "$name: tcpdump dropped packets: $(cat "$WORK/$name.tcpdump.log")"
	cp "$WORK/$name.pcap" "$HERE/$name.pcap"
	DGRAMS=$(tcpdump -nr "$HERE/$name.pcap" 2>/dev/null | wc -l)
	[ "$DGRAMS" -gt 0 ] || die "$name: no datagrams captured"
	log "$name: captured $DGRAMS datagrams"
}

# section TAG DESCRIPTION: start a section of NAME.golden.txt (read by golden/main.go).
section() { printf '### [%s] %s\n' "$1" "$2"; }

# Steps, in the order of a full run. Each is a function step_NAME (- → _).
STEPS=(trace trace-public softflowd-v5 softflowd-v9 softflowd-ipfix softflowd-v9-pcaptime softflowd-v9-public
	pmacct-v9 pmacct-ipfix pmacct-sflow pmacct-sflow-sampled)
TRACE="$REPO/testdata/traces/trace.pcap"
PUBLIC_TRACE="$REPO/testdata/traces/public.pcap" # read by softflowd-v9-public only

# ------------------------------------------------------- 1. the trace
step_trace() {
	log "generating testdata/traces/trace.pcap"
	mkdir -p "$(dirname "$TRACE")"
	(cd "$REPO" && go run ./testdata/pcaps/gentrace -o "$TRACE")
}
# The second trace: private clients and well-known public servers (GeoIP/ASN).
step_trace_public() {
	log "generating testdata/traces/public.pcap"
	mkdir -p "$(dirname "$PUBLIC_TRACE")"
	(cd "$REPO" && go run ./testdata/pcaps/gentrace -profile public -o "$PUBLIC_TRACE")
}

# ------------------------------------------- 2. NetFlow / IPFIX + nfdump
# netflow NAME PORT EXPORTER_DESCRIPTION -- EXPORTER COMMAND...
netflow() {
	local name=$1 port=$2 desc=$3
	shift 4
	local nfdir="$WORK/$name.nfcapd" txt="$HERE/$name.golden.txt"
	log "$name: $*"
	mkdir -p "$nfdir"
	capture_start "$name" "$port"
	local nfcapd_cmd=(nfcapd -b 127.0.0.1 -p "$port" -w "$nfdir" -t 3600 -B 4194304)
	"${nfcapd_cmd[@]}" >"$WORK/$name.nfcapd.log" 2>&1 &
	local nfcapd_pid=$!
	PIDS+=("$nfcapd_pid")
	wait_udp "$port"
	"$@" >"$WORK/$name.exporter.log" 2>&1 || die "$name: exporter failed: $(tail -5 "$WORK/$name.exporter.log")"
	capture_stop "$name"
	stop "$nfcapd_pid" TERM # nfcapd flushes and closes its file on SIGTERM
	grep -q "Ident: " "$WORK/$name.nfcapd.log" || die "$name: nfcapd did not report: $(cat "$WORK/$name.nfcapd.log")"

	# Independent check that nfcapd got every record: count the data records
	# in the capture with tshark's cflow dissector.
	local recs got
	recs=$(tshark -r "$HERE/$name.pcap" -d "udp.port==$port,cflow" -T fields -E occurrence=a -e cflow.packets 2>/dev/null |
		tr ',' '\n' | grep -c .)
	got=$(grep -o 'Flows: [0-9]*' "$WORK/$name.nfcapd.log" | tail -1 | cut -d' ' -f2)
	[ "$recs" = "$got" ] || die "$name: capture holds $recs flow records but nfcapd stored $got"
	# v9/IPFIX: the first datagram must carry the templates (set id 0 / 2).
	if [[ $name != *v5 ]]; then
		local sets
		sets=$(tshark -r "$HERE/$name.pcap" -d "udp.port==$port,cflow" -c 1 -T fields -e cflow.flowset_id 2>/dev/null)
		[[ ",$sets," == *,0,* || ",$sets," == *,2,* ]] || die "$name: first datagram carries no template (sets $sets)"
	fi

	local nfd="nfdump -R $name.nfcapd"
	{
		section source "(the JSON source string)"
		echo "nfdump $NFDUMP_VERSION; collector: ${nfcapd_cmd[*]/$nfdir/$name.nfcapd} (live, received the captured datagrams); queries: $nfd -I; $nfd -n $TOP -s srcip/bytes -o csv; $nfd -n $TOP -s dstip/bytes -o csv; $nfd -n $TOP -s ip/bytes -o csv; $nfd -n $TOP -s srcport:p/bytes -o csv; $nfd -n $TOP -s dstport:p/bytes -o csv; $nfd -n $TOP -s proto/bytes -o csv"
		echo
		section info "exporter: $desc"
		echo "\$ $*"
		sed -n '/Packets processed\|Flows exported\|Ignored packets\|INFO\|WARN\|ERROR/p' "$WORK/$name.exporter.log" | grep -v -- "--build=" || true
		echo
		section info "tcpdump (capture of the exporter's datagrams)"
		echo "\$ tcpdump -i lo -n -U -w $name.pcap 'udp and dst host 127.0.0.1 and dst port $port'"
		cat "$WORK/$name.tcpdump.log"
		echo "datagrams in $name.pcap: $DGRAMS; flow records in them (tshark cflow): $recs"
		echo
		section info "nfcapd log"
		echo "\$ ${nfcapd_cmd[*]/$nfdir/$name.nfcapd}"
		cat "$WORK/$name.nfcapd.log"
		echo
		section nfdump:total "\$ $nfd -I"
		(cd "$WORK" && nfdump -R "$name.nfcapd" -I)
		echo
		for s in srcip dstip ip srcport:p dstport:p proto; do
			section "nfdump:${s%:p}" "\$ $nfd -n $TOP -s $s/bytes -o csv"
			(cd "$WORK" && nfdump -R "$name.nfcapd" -n "$TOP" -s "$s/bytes" -o csv)
			echo
		done
		for s in srcport dstport; do
			section info "port statistic without :p (keyed by port only, TCP and UDP merged): \$ $nfd -n $TOP -s $s/bytes -o csv"
			(cd "$WORK" && nfdump -R "$name.nfcapd" -n "$TOP" -s "$s/bytes" -o csv)
			echo
		done
		section info "\$ $nfd -s srcip/bytes -n 10  (human-readable)"
		(cd "$WORK" && nfdump -R "$name.nfcapd" -n 10 -s srcip/bytes)
	} >"$txt"
	sed -i "s|$WORK/||g; s|$HERE/||g; s|$REPO/||g" "$txt"
	"$WORK/golden" -txt "$txt" -json "$HERE/$name.golden.json" -top "$TOP"
	log "$name: $(grep -A4 '"total"' "$HERE/$name.golden.json" | tr -d ' \n')"
}

step_softflowd_v5() {
	netflow softflowd-v5 40105 "softflowd $SOFTFLOWD_VERSION, NetFlow v5 (IPv4 only)" -- \
		softflowd -d -a -r "$TRACE" -n 127.0.0.1:40105 -v 5
}
step_softflowd_v9() {
	netflow softflowd-v9 40109 "softflowd $SOFTFLOWD_VERSION, NetFlow v9" -- \
		softflowd -d -a -r "$TRACE" -n 127.0.0.1:40109 -v 9
}
step_softflowd_ipfix() {
	netflow softflowd-ipfix 40110 "softflowd $SOFTFLOWD_VERSION, IPFIX" -- \
		softflowd -d -a -r "$TRACE" -n 127.0.0.1:40110 -v 10
}
# softflowd-v9 without -a: softflowd's clock is the wall clock, so its flow
# times (packet time - softflowd's wall-clock start, mod 2^32 ms) are insane
# (see README.md, softflowd quirks). The records are the same as softflowd-v9's.
step_softflowd_v9_pcaptime() {
	local name=softflowd-v9-pcaptime port=40119
	netflow "$name" "$port" "softflowd $SOFTFLOWD_VERSION, NetFlow v9, without -a (flow times follow softflowd's wall clock, not packet time)" -- \
		softflowd -d -r "$TRACE" -n "127.0.0.1:$port" -v 9
	# For reference (ignored by golden/main.go): the time fields as sent.
	{
		echo
		section info "time fields per datagram: capture time, v9 header unix_secs and sysUptime (ms), FIRST_SWITCHED / LAST_SWITCHED (ms, min and max over the datagram's records)"
		echo "\$ tshark -r $name.pcap -d udp.port==$port,cflow -T fields -E occurrence=a -e frame.time_epoch -e cflow.unix_secs -e cflow.sysuptime -e cflow.timestart -e cflow.timeend"
		tshark -r "$HERE/$name.pcap" -d "udp.port==$port,cflow" -T fields -E occurrence=a -E separator=';' \
			-e frame.time_epoch -e cflow.unix_secs -e cflow.sysuptime -e cflow.timestart -e cflow.timeend 2>/dev/null |
			python3 -c '
import sys
ms = lambda v: [round(float(x) * 1000) for x in v.split(",") if x]
print("capture_time unix_secs sysUptime first_min first_max last_min last_max")
for line in sys.stdin:
    t, secs, up, first, last = line.rstrip("\n").split(";")
    f, l = ms(first), ms(last)
    print(t, secs, ms(up)[0], *(["-"] * 4 if not f else [min(f), max(f), min(l), max(l)]))'
	} >>"$HERE/$name.golden.txt"
}

# softflowd-v9 of the public trace (public.pcap): flows with public addresses
# for GeoIP/ASN enrichment.
step_softflowd_v9_public() {
	netflow softflowd-v9-public 40129 "softflowd $SOFTFLOWD_VERSION, NetFlow v9, trace public.pcap (public addresses)" -- \
		softflowd -d -a -r "$PUBLIC_TRACE" -n 127.0.0.1:40129 -v 9
}

# pmacctd reads the savefile and exits at EOF; its nfprobe plugin then
# expires and exports every flow. (Do NOT set pcap_savefile_wait: true here:
# the core must then be stopped with SIGINT, which makes pmacctd 1.7.7 hand
# the last plugin buffer over once more, and the tail of the trace is
# double counted.)
pmacct_conf() { # pmacct_conf FILE LINES...
	local f=$1
	shift
	{
		echo "! generated by testdata/pcaps/make.sh"
		echo "daemonize: false"
		echo "pcap_savefile: $TRACE"
		printf '%s\n' "$@"
	} >"$f"
}
step_pmacct_v9() {
	pmacct_conf "$WORK/pmacct-v9.conf" "plugins: nfprobe" "nfprobe_receiver: 127.0.0.1:40209" "nfprobe_version: 9"
	netflow pmacct-v9 40209 "pmacctd $PMACCT_VERSION nfprobe plugin, NetFlow v9; config: $(grep -v '^!' "$WORK/pmacct-v9.conf" | sed "s|$HERE/||; s|$REPO/||" | paste -sd';')" -- \
		timeout 300 pmacctd -f "$WORK/pmacct-v9.conf"
}
step_pmacct_ipfix() {
	pmacct_conf "$WORK/pmacct-ipfix.conf" "plugins: nfprobe" "nfprobe_receiver: 127.0.0.1:40210" "nfprobe_version: 10"
	netflow pmacct-ipfix 40210 "pmacctd $PMACCT_VERSION nfprobe plugin, IPFIX; config: $(grep -v '^!' "$WORK/pmacct-ipfix.conf" | sed "s|$HERE/||; s|$REPO/||" | paste -sd';')" -- \
		timeout 300 pmacctd -f "$WORK/pmacct-ipfix.conf"
}

# ------------------------------------------------------ 3. sFlow + sfacctd
# sfacctd print plugins, one per statistic; the "ip" statistic is the sum
# of the srcip and dstip tables (see golden/main.go).
# print[effrate] must come first: sfacctd 1.7.7 renormalizes the first plugin
# of the list with an "effective" per-sample rate (sample_pool delta since
# the previous sample, state shared by all plugins and updated there) and
# every later plugin with the sample's sampling rate (meanSkipCount). The
# throwaway first plugin takes the former, so the five statistics we use are
# all renormalized the same way (x sampling rate); its table is kept in the
# .golden.txt for reference.
sfacctd_conf() { # sfacctd_conf FILE OUTDIR LINES...
	local f=$1 out=$2
	shift 2
	{
		echo "! generated by testdata/pcaps/make.sh"
		echo "daemonize: false"
		printf '%s\n' "$@"
		echo "plugins: print[effrate], print[srcip], print[dstip], print[srcport], print[dstport], print[proto]"
		echo "aggregate[effrate]: proto"
		echo "aggregate[srcip]: src_host"
		echo "aggregate[dstip]: dst_host"
		echo "aggregate[srcport]: src_port, proto"
		echo "aggregate[dstport]: dst_port, proto"
		echo "aggregate[proto]: proto"
		echo "print_output: csv"
		echo "print_num_protos: true"
		echo "print_refresh_time: 3600"
		for d in effrate srcip dstip srcport dstport proto; do
			echo "print_output_file[$d]: $out/$d.csv"
		done
	} >"$f"
}

# sflow NAME PORT EXPORTER_DESCRIPTION PMACCTD_EXTRA_LINES...
sflow() {
	local name=$1 port=$2 desc=$3
	shift 3
	local txt="$HERE/$name.golden.txt" live="$WORK/$name.live" off="$WORK/$name.offline"
	mkdir -p "$live" "$off"
	pmacct_conf "$WORK/$name.conf" "pcap_savefile_wait: true" "plugins: sfprobe" "sfprobe_receiver: 127.0.0.1:$port" \
		"sfprobe_agentip: 127.0.0.1" "$@"
	sfacctd_conf "$WORK/$name.sfacctd-live.conf" "$live" "sfacctd_ip: 127.0.0.1" "sfacctd_port: $port" \
		"sfacctd_renormalize: true" "sfacctd_pipe_size: 4194304"
	sfacctd_conf "$WORK/$name.sfacctd-offline.conf" "$off" "pcap_savefile: $HERE/$name.pcap" \
		"sfacctd_renormalize: false"
	log "$name: pmacctd -f $name.conf"
	capture_start "$name" "$port"
	sfacctd -f "$WORK/$name.sfacctd-live.conf" >"$WORK/$name.sfacctd-live.log" 2>&1 &
	local sfacctd_pid=$!
	PIDS+=("$sfacctd_pid")
	wait_udp "$port"
	# The sfprobe plugin sends a partially filled datagram only from its
	# once-a-second tick, which runs when data arrives or when its 60 s poll
	# times out, and it does not flush on exit. So pmacctd stays up after EOF
	# (pcap_savefile_wait: true) until that timeout has flushed the last
	# datagram; then the plugin is stopped first (SIGINT: exits without
	# sending anything) and the core after it (a SIGINT to the core while the
	# plugin lives would hand the last buffer over once more).
	pmacctd -f "$WORK/$name.conf" >"$WORK/$name.exporter.log" 2>&1 &
	local pm_pid=$! child i
	PIDS+=("$pm_pid")
	wait_for "$WORK/$name.exporter.log" "finished reading PCAP capture file" 1200
	sleep 63
	for child in $(pgrep -P "$pm_pid"); do
		stop "$child" INT
		for i in $(seq 100); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
	done
	stop "$pm_pid" INT
	capture_stop "$name"
	stop "$sfacctd_pid" INT # print plugins write their CSV when purging on exit
	wait_purged "$WORK/$name.sfacctd-live.log"
	for d in srcip dstip srcport dstport proto; do
		[ -s "$live/$d.csv" ] || die "$name: sfacctd wrote no $d.csv: $(tail -5 "$WORK/$name.sfacctd-live.log")"
	done
	# The same capture read back by sfacctd without renormalization: its
	# PACKETS column is the number of flow samples per key ("flows").
	timeout 300 sfacctd -f "$WORK/$name.sfacctd-offline.conf" >"$WORK/$name.sfacctd-offline.log" 2>&1 ||
		die "$name: offline sfacctd failed"
	wait_purged "$WORK/$name.sfacctd-offline.log"
	# Second, independent count of the flow samples: tshark's sFlow dissector.
	local samples
	samples=$(tshark -r "$HERE/$name.pcap" -d "udp.port==$port,sflow" -T fields -E occurrence=a -e sflow_245.sampletype 2>/dev/null |
		tr ',' '\n' | grep -c '^1$' || true)
	{
		section source "(the JSON source string)"
		echo "sfacctd $SFACCTD_VERSION (pmacct); collector: sfacctd -f $name.sfacctd-live.conf (live on 127.0.0.1:$port, received the captured datagrams; sfacctd_renormalize: true; print plugins aggregating src_host | dst_host | src_port,proto | dst_port,proto | proto) gives bytes and packets; 'ip' = srcip + dstip tables; flows = flow samples per key = PACKETS of sfacctd -f $name.sfacctd-offline.conf (pcap_savefile: $name.pcap, sfacctd_renormalize: false); total flows cross-checked with tshark -r $name.pcap -d udp.port==$port,sflow -T fields -E occurrence=a -e sflow_245.sampletype (count of 1 = flow sample)"
		echo
		section info "exporter: $desc"
		echo "\$ pmacctd -f $name.conf   # stopped 63 s after 'finished reading PCAP capture file': SIGINT to the sfprobe plugin, then to the core"
		grep -v '^!' "$WORK/$name.conf" | sed "s|$HERE/||; s|$REPO/||"
		grep -E 'INFO|WARN|ERROR' "$WORK/$name.exporter.log" | grep -v -- "--build=" || true
		echo
		section info "tcpdump (capture of the exporter's datagrams)"
		echo "\$ tcpdump -i lo -n -U -w $name.pcap 'udp and dst host 127.0.0.1 and dst port $port'"
		cat "$WORK/$name.tcpdump.log"
		echo "datagrams in $name.pcap: $DGRAMS"
		echo
		section info "sfacctd -f $name.sfacctd-live.conf"
		grep -v '^!' "$WORK/$name.sfacctd-live.conf" | sed "s|$WORK/||"
		grep -E 'WARN|ERROR' "$WORK/$name.sfacctd-live.log" || true
		echo
		section info "sfacctd -f $name.sfacctd-offline.conf"
		grep -v '^!' "$WORK/$name.sfacctd-offline.conf" | sed "s|$WORK/||; s|$HERE/||; s|$REPO/||"
		grep -E 'WARN|ERROR' "$WORK/$name.sfacctd-offline.log" || true
		echo
		section info "$name.live/effrate.csv (print[effrate], first plugin: renormalized by sfacctd's effective per-sample rate; NOT used)"
		cat "$live/effrate.csv"
		echo
		for d in srcip dstip srcport dstport proto; do
			section "sfacctd:live:$d" "$name.live/$d.csv (print[$d], renormalized)"
			cat "$live/$d.csv"
			echo
		done
		for d in srcip dstip srcport dstport proto; do
			section "sfacctd:offline:$d" "$name.offline/$d.csv (print[$d], not renormalized: PACKETS = samples)"
			cat "$off/$d.csv"
			echo
		done
		section tshark:samples "\$ tshark -r $name.pcap -d udp.port==$port,sflow -T fields -E occurrence=a -e sflow_245.sampletype | tr , '\\n' | grep -c '^1\$'"
		echo "flow_samples=$samples"
	} >"$txt"
	sed -i "s|$WORK/||g; s|$HERE/||g; s|$REPO/||g" "$txt"
	"$WORK/golden" -txt "$txt" -json "$HERE/$name.golden.json" -top "$TOP"
	log "$name: $(grep -A4 '"total"' "$HERE/$name.golden.json" | tr -d ' \n')"
}

step_pmacct_sflow() {
	sflow pmacct-sflow 40206 "pmacctd $PMACCT_VERSION sfprobe plugin, sFlow v5, every packet sampled (no sampling_rate)"
}
step_pmacct_sflow_sampled() {
	sflow pmacct-sflow-sampled 40216 "pmacctd $PMACCT_VERSION sfprobe plugin, sFlow v5, sampling_rate: 10" "sampling_rate: 10"
}

# ------------------------------------------------------------ 4. checks
# checks: of every capture and golden file in the directory, made now or before.
checks() {
	local f size TRACE_PKTS TRACE_V4_PKTS PUBLIC_PKTS=0
	log "checking outputs"
	TRACE_PKTS=$(tcpdump -nr "$TRACE" 2>/dev/null | wc -l)
	TRACE_V4_PKTS=$(tcpdump -nr "$TRACE" ip 2>/dev/null | wc -l)
	[ ! -s "$PUBLIC_TRACE" ] || PUBLIC_PKTS=$(tcpdump -nr "$PUBLIC_TRACE" 2>/dev/null | wc -l)
	for f in "$HERE"/*.pcap "$TRACE" "$PUBLIC_TRACE"; do
		[ -e "$f" ] || continue
		size=$(stat -c %s "$f")
		[ "$size" -lt 5000000 ] || die "$f is $size bytes (>= 5 MB)"
	done
	python3 - "$HERE" "$TRACE_PKTS" "$TRACE_V4_PKTS" "$PUBLIC_PKTS" <<'EOF'
import json, sys, glob, os
here, trace_pkts, trace_v4, public_pkts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
bad = False
for f in sorted(glob.glob(os.path.join(here, '*.golden.json'))):
    g = json.load(open(f))
    name = os.path.basename(f)[:-len('.golden.json')]
    t = g['total']
    if min(t.values()) <= 0:
        print(f'{name}: zero total {t}'); bad = True
    for dim, rows in g['top'].items():
        if len(rows) < (2 if dim == 'proto' else 10):
            print(f'{name}: {dim} has {len(rows)} rows'); bad = True
        if [r['bytes'] for r in rows] != sorted((r['bytes'] for r in rows), reverse=True):
            print(f'{name}: {dim} not sorted'); bad = True
        lim = 2 if dim == 'ip' else 1
        for k in ('bytes', 'packets', 'flows'):
            if sum(r[k] for r in rows) > lim * t[k]:
                print(f'{name}: {dim} {k} rows exceed total'); bad = True
        if dim == 'proto' and any(sum(r[k] for r in rows) != t[k] for k in ('bytes', 'packets', 'flows')):
            print(f'{name}: proto rows do not add up to total'); bad = True
        top10 = [r['bytes'] for r in rows[:11]]
        if len(set(top10)) != len(top10):
            print(f'{name}: WARNING: tie by bytes within the top 11 of {dim}')
    expect = trace_v4 if name == 'softflowd-v5' else public_pkts if name.endswith('-public') else trace_pkts
    note = '' if 'sampled' in name or t['packets'] == expect else f'  (trace has {expect} packets)'
    print(f"{name}: bytes={t['bytes']} packets={t['packets']} flows={t['flows']}{note}")
sys.exit(1 if bad else 0)
EOF
}

# ------------------------------------------------------------- 5. main
if [ "${1:-}" = -l ]; then
	printf '%s\n' "${STEPS[@]}"
	exit 0
fi
if [ $# -eq 0 ]; then
	rm -f "$HERE"/*.pcap "$HERE"/*.golden.json "$HERE"/*.golden.txt
	set -- "${STEPS[@]}"
fi
for s in "$@"; do
	declare -F "step_${s//-/_}" >/dev/null || die "unknown step '$s'; steps: ${STEPS[*]}"
done
(cd "$REPO" && go build -o "$WORK/golden" ./testdata/pcaps/golden)
for s in "$@"; do
	case $s in
	trace | trace-public) ;;
	*-public) [ -s "$PUBLIC_TRACE" ] || die "$PUBLIC_TRACE missing: run the trace-public step (or make.sh without arguments) first" ;;
	*) [ -s "$TRACE" ] || die "$TRACE missing: run the trace step (or make.sh without arguments) first" ;;
	esac
	"step_${s//-/_}"
done
checks
log "done"
