package decode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// Fuzz targets, one per decoder path plus a generic one. A fuzz input is a
// sequence of datagrams (each a 2-byte big-endian length, then that many
// bytes) decoded in order by one Decoder, so that mutations hit templates,
// options and the data sets that use them together. Each path target forces
// the version bytes (and the IPFIX message length) of every datagram so the
// mutator's work is not wasted on other paths; FuzzDecode forces nothing.
//
// Beyond "no panic", every input is checked against properties that hold for
// any datagram, hostile or not (see checkSequence). Crashers Go finds are
// written under testdata/fuzz/FuzzXxx and replayed by plain `go test`.

const (
	// fuzzMaxDatagrams bounds the work of one input; the rest is ignored.
	fuzzMaxDatagrams = 64
	// fuzzDeadline is how long the datagrams of one input may take to decode,
	// twice. Real decoding takes microseconds: this is only far enough from
	// that to never fire on a busy machine, and it catches an endless loop,
	// which Go's fuzzing engine does not detect by itself.
	fuzzDeadline = 10 * time.Second
)

// fuzzSplit cuts a fuzz input into datagrams, copied so they can be shaped.
// A length past the end of the input takes what is left.
func fuzzSplit(in []byte) [][]byte {
	var dgs [][]byte
	for len(in) >= 2 && len(dgs) < fuzzMaxDatagrams {
		n := int(binary.BigEndian.Uint16(in))
		in = in[2:]
		n = min(n, len(in))
		// Capacity exactly the length, so a read past the end panics
		// instead of finding spare bytes, as it would in a listener's buffer.
		p := make([]byte, n)
		copy(p, in)
		dgs = append(dgs, p)
		in = in[n:]
	}
	return dgs
}

// fuzzJoin is the inverse of fuzzSplit, to build seeds.
func fuzzJoin(dgs ...[]byte) []byte {
	var b []byte
	for _, p := range dgs {
		if len(p) > math.MaxUint16 {
			panic("datagram too long for a fuzz seed")
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b
}

// Shapers force a datagram onto one decoder path.
func shapeNetFlowV5(p []byte) {
	if len(p) >= 2 {
		binary.BigEndian.PutUint16(p, 5)
	}
}

func shapeNetFlowV9(p []byte) {
	if len(p) >= 2 {
		binary.BigEndian.PutUint16(p, 9)
	}
}

// shapeIPFIX also makes the message length exact, so that insertions and
// deletions still reach the sets; length mismatches are FuzzDecode's.
func shapeIPFIX(p []byte) {
	if len(p) >= 2 {
		binary.BigEndian.PutUint16(p, 10)
	}
	if len(p) >= 4 {
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	}
}

func shapeSFlow(p []byte) {
	if len(p) >= 4 {
		binary.BigEndian.PutUint32(p, 5)
	}
}

func FuzzDecode(f *testing.F)    { fuzzDecoder(f, nil, flow.ProtoUnknown) }
func FuzzNetFlowV5(f *testing.F) { fuzzDecoder(f, shapeNetFlowV5, flow.ProtoNetFlowV5) }
func FuzzNetFlowV9(f *testing.F) { fuzzDecoder(f, shapeNetFlowV9, flow.ProtoNetFlowV9) }
func FuzzIPFIX(f *testing.F)     { fuzzDecoder(f, shapeIPFIX, flow.ProtoIPFIX) }
func FuzzSFlow(f *testing.F)     { fuzzDecoder(f, shapeSFlow, flow.ProtoSFlowV5) }

// fuzzSentinels are the errors Decode returns, by their name in ExporterStats.Errors.
var fuzzSentinels = map[string]error{
	"malformed": ErrMalformed, "template_unknown": ErrTemplateUnknown, "unknown_version": ErrUnknownVersion,
}

// fuzzProto is the protocol a datagram is decoded as: the decoder's own
// dispatch rule (decode.go), restated from the wire formats.
func fuzzProto(p []byte) flow.Protocol {
	switch {
	case len(p) < 4:
		return flow.ProtoUnknown
	case binary.BigEndian.Uint32(p) == 5:
		return flow.ProtoSFlowV5
	}
	switch binary.BigEndian.Uint16(p) {
	case 5:
		return flow.ProtoNetFlowV5
	case 9:
		return flow.ProtoNetFlowV9
	case 10:
		return flow.ProtoIPFIX
	}
	return flow.ProtoUnknown
}

// fuzzDecoder runs checkSequence on the inputs of one path (ProtoUnknown: any),
// shaped by shape, seeded with that path's seeds.
func fuzzDecoder(f *testing.F, shape func([]byte), proto flow.Protocol) {
	for _, s := range fuzzSeeds(f, proto) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		dgs := fuzzSplit(in)
		if shape != nil {
			for _, p := range dgs {
				shape(p)
			}
		}
		checkSequence(t, dgs)
	})
}

// checkSequence decodes the datagrams in order on two fresh decoders and
// checks what must hold whatever the bytes:
//   - no panic was recovered (errPanic is a bug, not bad input), and every
//     error wraps one of the documented sentinels;
//   - the decoder appends to the caller's slice without touching what was
//     there (the listener accumulates a batch's records in one slice);
//   - decoding is deterministic: same records, errors and exporter stats;
//   - the records emitted are bounded by the bytes received (a record takes
//     at least 48 bytes in NetFlow v5, 4 in v9/IPFIX — an address — and 80 in
//     sFlow — a sample header and a sampled IPv4 record);
//   - each record is sane for its protocol (fuzzRecordProblem);
//   - the exporter's stats count every datagram, record and error reason;
//   - the whole input decodes in bounded time.
func checkSequence(t *testing.T, dgs [][]byte) {
	watchdog := time.AfterFunc(fuzzDeadline, func() {
		// A panic in another goroutine kills the fuzzing worker: Go then keeps
		// the input running at that moment as a crasher.
		panic(fmt.Sprintf("decoding %d datagrams took over %v", len(dgs), fuzzDeadline))
	})
	defer watchdog.Stop()

	src := exporterA
	d1 := newTestDecoder(t, DefaultConfiguration())
	d2 := newTestDecoder(t, DefaultConfiguration())
	// d1 appends everything to one slice, after a record of the caller's;
	// d2 reuses a scratch slice from empty, its records collected in all2.
	canary := flow.Record{Bytes: 0xdecade, Packets: 7, Proto: 99, Export: flow.ProtoUnknown}
	out1 := []flow.Record{canary}
	var out2, all2 []flow.Record
	var (
		wantErrors    = map[string]uint64{}
		wantProtocols = map[flow.Protocol]bool{}
		domains       = map[flow.Protocol][]uint32{}
		bound         int // records the datagrams so far can hold at most
	)
	for i, p := range dgs {
		var err1, err2 error
		out1, err1 = d1.Decode(src, p, testReceived, out1)
		out2, err2 = d2.Decode(src, p, testReceived, out2[:0])
		all2 = append(all2, out2...)

		if err1 != nil {
			require.NotErrorIsf(t, err1, errPanic, "datagram %d: %v", i, err1)
			require.Truef(t, errors.Is(err1, ErrMalformed) || errors.Is(err1, ErrTemplateUnknown) || errors.Is(err1, ErrUnknownVersion),
				"datagram %d: error %v wraps no sentinel", i, err1)
			for name, sentinel := range fuzzSentinels {
				if errors.Is(err1, sentinel) {
					wantErrors[name]++
				}
			}
		}
		require.Equalf(t, fmt.Sprint(err1), fmt.Sprint(err2), "datagram %d: errors differ between two decoders", i)

		proto := fuzzProto(p)
		if proto != flow.ProtoUnknown {
			wantProtocols[proto] = true
		}
		switch proto {
		case flow.ProtoNetFlowV5:
			bound += max(len(p)-v5HeaderLength, 0) / v5RecordLength
		case flow.ProtoNetFlowV9:
			bound += max(len(p)-v9HeaderLength-setHeaderLength, 0) / 4
			if len(p) >= v9HeaderLength {
				domains[proto] = append(domains[proto], binary.BigEndian.Uint32(p[16:]))
			}
		case flow.ProtoIPFIX:
			bound += max(len(p)-ipfixHeaderLength-setHeaderLength, 0) / 4
			if len(p) >= ipfixHeaderLength {
				domains[proto] = append(domains[proto], binary.BigEndian.Uint32(p[12:]))
			}
		case flow.ProtoSFlowV5:
			bound += max(len(p)-28, 0) / 80
		}
		// Cumulative: a decoder may hold records back until a template comes.
		require.LessOrEqualf(t, len(all2), bound, "datagram %d: more records than the bytes can hold", i)
		for j := range out2 {
			if problem := fuzzRecordProblem(p, proto, domains[proto], &out2[j]); problem != "" {
				t.Fatalf("datagram %d, record %d: %s: %+v", i, j, problem, out2[j])
			}
		}
	}
	if want := append([]flow.Record{canary}, all2...); !slices.Equal(want, out1) { // DeepEqual is slow
		require.Equal(t, want, out1, "records differ between two decoders, or the caller's records were overwritten")
	}

	stats := d1.Exporters()
	require.Equal(t, stats, d2.Exporters(), "exporter stats differ between two decoders")
	if len(dgs) == 0 {
		require.Empty(t, stats)
		return
	}
	require.Len(t, stats, 1)
	s := stats[0]
	require.Equal(t, uint64(len(dgs)), s.Datagrams)
	require.Equal(t, uint64(len(all2)), s.Flows)
	// Every reason returned is counted once per datagram; others (such as
	// template_limit) may be counted without being returned.
	for name := range fuzzSentinels {
		require.Equalf(t, wantErrors[name], s.Errors[name], "datagrams counted as %s", name)
	}
	var protocols []string
	for p := flow.ProtoNetFlowV5; p <= flow.ProtoSFlowV5; p++ {
		if wantProtocols[p] {
			protocols = append(protocols, p.String())
		}
	}
	require.Equal(t, protocols, s.Protocols)
}

// fuzzRecordProblem says what is wrong with a record emitted while decoding
// datagram p, "" if nothing. Plain comparisons, not require: they run for
// every record of every input, and require's call-stack walks would halve the
// fuzzer's speed.
func fuzzRecordProblem(p []byte, proto flow.Protocol, domains []uint32, r *flow.Record) string {
	rate := uint64(r.SamplingRate)
	switch {
	case r.Export != proto:
		return "record of another protocol than its datagram's"
	case r.Exporter != flow.AddrFrom(exporterA):
		return "exporter is not the datagram's source"
	case r.Received != testReceived.UnixMilli():
		return "received time is not the datagram's"
	case rate == 0:
		return "sampling rate 0 (unsampled is 1)"
	// Bytes and Packets are counts times the rate: a multiple of it, unless
	// the product did not fit and saturated.
	case r.Bytes%rate != 0 && r.Bytes != math.MaxUint64:
		return "bytes not a multiple of the sampling rate"
	case r.Packets%rate != 0 && r.Packets != math.MaxUint64:
		return "packets not a multiple of the sampling rate"
	}
	switch proto {
	case flow.ProtoNetFlowV5:
		// sysUptime-relative times land within 49.7 days before the export.
		exportMs := int64(binary.BigEndian.Uint32(p[8:]))*1000 + int64(binary.BigEndian.Uint32(p[12:]))/1_000_000
		inWindow := func(ms int64) bool { return ms <= exportMs && ms > exportMs-1<<32 }
		switch {
		// 32-bit counters, 14-bit interval, 16-bit interfaces and engine, IPv4 only.
		case rate > 0x3fff:
			return "NetFlow v5 sampling interval over 14 bits"
		case r.Bytes/rate > math.MaxUint32 || r.Packets/rate > math.MaxUint32:
			return "NetFlow v5 counter over 32 bits"
		case r.InIf > math.MaxUint16 || r.OutIf > math.MaxUint16:
			return "NetFlow v5 interface over 16 bits"
		case r.ObsDomain > math.MaxUint16:
			return "NetFlow v5 engine over 16 bits"
		case !r.SrcAddr.Is4() || !r.DstAddr.Is4():
			return "NetFlow v5 address not IPv4"
		case !inWindow(r.Start) || !inWindow(r.End):
			return fmt.Sprintf("NetFlow v5 flow time not within 2^32 ms before the export at %d", exportMs)
		}
	case flow.ProtoNetFlowV9, flow.ProtoIPFIX:
		if !slices.Contains(domains, r.ObsDomain) {
			return "observation domain of no datagram"
		}
	case flow.ProtoSFlowV5:
		subAgent := 12 // after an IPv4 agent address
		if binary.BigEndian.Uint32(p[4:]) == 2 {
			subAgent = 24
		}
		switch {
		// One sampled packet stands for rate packets; a frame length is 32 bits.
		case r.Packets != rate:
			return "sFlow packets are not the sampling rate"
		case r.Bytes/rate > math.MaxUint32:
			return "sFlow frame length over 32 bits"
		case r.Start != 0 || r.End != 0:
			return "sFlow carries no flow times"
		case r.InIf == sflowIfUnknown || r.OutIf == sflowIfUnknown:
			return "sFlow unknown interface kept as an ifIndex"
		case r.ObsDomain != binary.BigEndian.Uint32(p[subAgent:]):
			return "sFlow observation domain is not the sub-agent ID"
		}
	}
	return ""
}

// fuzzSeeds returns the seeds of a path (ProtoUnknown: all of them): hand-built
// datagram sequences for features the captures lack, and windows of the
// captures in testdata/pcaps.
func fuzzSeeds(f *testing.F, proto flow.Protocol) [][]byte {
	captures, err := fuzzCaptureSeeds()
	require.NoError(f, err)
	var seeds [][]byte
	for p, s := range fuzzHandSeeds() {
		if proto == flow.ProtoUnknown || p == proto {
			seeds = append(seeds, s...)
		}
	}
	for p, s := range captures {
		if proto == flow.ProtoUnknown || p == proto {
			seeds = append(seeds, s...)
		}
	}
	return seeds
}

// fuzzCaptureSeeds are, per capture, its first datagram, its first four
// (templates, then data that uses them) and three windows of two datagrams
// taken across it, after the first. A capture's protocol is its first datagram's.
var fuzzCaptureSeeds = sync.OnceValues(func() (map[flow.Protocol][][]byte, error) {
	paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", "pcaps", "*.pcap"))
	if err != nil {
		return nil, err
	}
	seeds := map[flow.Protocol][][]byte{}
	for _, path := range paths { // every one an export: the raw packet trace is in testdata/traces
		var dgs [][]byte
		if _, err := pcapsrc.Read(path, func(d pcapsrc.Datagram) error {
			dgs = append(dgs, bytes.Clone(d.Payload))
			return nil
		}); err != nil {
			return nil, err
		}
		if len(dgs) == 0 {
			continue
		}
		proto := fuzzProto(dgs[0])
		seeds[proto] = append(seeds[proto], fuzzJoin(dgs[0]), fuzzJoin(dgs[:min(4, len(dgs))]...))
		for _, q := range []int{1, 2, 3} {
			// After the first datagram, which has the templates.
			from := q * len(dgs) / 4
			seeds[proto] = append(seeds[proto], fuzzJoin(append([][]byte{dgs[0]}, dgs[from:min(from+2, len(dgs))]...)...))
		}
	}
	return seeds, nil
})

// fuzzHandSeeds covers what the captures lack: every field kind and set kind
// of the templates, sampling options, withdrawals, and every sFlow header kind.
func fuzzHandSeeds() map[flow.Protocol][][]byte {
	valid := validDatagrams()
	return map[flow.Protocol][][]byte{
		flow.ProtoNetFlowV5: fuzzV5Seeds(valid["netflow-v5"]),
		flow.ProtoNetFlowV9: fuzzV9Seeds(valid["netflow-v9"]),
		flow.ProtoIPFIX:     fuzzIPFIXSeeds(valid["ipfix"]),
		flow.ProtoSFlowV5:   fuzzSFlowSeeds(valid["sflow-v5"]),
	}
}

func fuzzV5Seeds(valid []byte) [][]byte {
	r := v5Record{src: "10.0.0.1", dst: "10.0.0.2", in: 3, out: 4, packets: 10, bytes: 1500,
		first: 1_000, last: 2_000, srcPort: 443, dstPort: 50000, tcpFlags: 0x1b, proto: 6}
	wrapped := r // flows that started before sysUptime wrapped
	wrapped.first, wrapped.last = math.MaxUint32-1000, math.MaxUint32
	full := make([]v5Record, 30)
	for i := range full {
		full[i] = r
	}
	short := v5Datagram(5_000, 1_700_000_000, 0, 0, 0, 0, r, r)
	return [][]byte{
		fuzzJoin(valid),
		fuzzJoin(v5Datagram(5_000, 1_700_000_000, 999_999_999, 1, 2, 0x4000|100, r, wrapped)), // mode bits + interval
		fuzzJoin(v5Datagram(500, 1_700_000_000, 0, 0, 0, 0, full...)),
		fuzzJoin(short[:len(short)-10], v5Datagram(1, 2, 3, 0, 0, 0)), // announces more than it carries, then none
	}
}

func fuzzV9Seeds(valid []byte) [][]byte {
	template := v9TemplateSet(templateRecord(256, v9Fields...))
	data := set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10), v9Record("10.0.0.3", "10.0.0.4", 2000, 20))
	v6Fields := []field{
		{id: fieldIPv6SrcAddr, length: 16}, {id: fieldIPv6DstAddr, length: 16},
		{id: fieldOutBytes, length: 8}, {id: fieldOutPkts, length: 8}, {id: fieldSamplerID, length: 1},
		{id: fieldFirstSwitched, length: 4}, {id: fieldLastSwitched, length: 4},
	}
	v6Record := cat(ip("2001:db8::1"), ip("2001:db8::2"), u64(1<<40), u64(1<<20), u8(3), u32(v9SysUptime-5), u32(v9SysUptime))
	// Options: a system scope with the sampling interval (34), then an
	// interface scope with sampler ID and random interval (48, 50).
	samplingOptions := cat(
		v9OptionsTemplateSet(300, []field{{id: 1, length: 4}}, []field{{id: fieldSamplingInterval, length: 4}}),
		v9OptionsTemplateSet(301, []field{{id: 2, length: 2}},
			[]field{{id: fieldSamplerID, length: 1}, {id: fieldSamplerRandomIntvl, length: 2}}))
	return [][]byte{
		fuzzJoin(valid),
		fuzzJoin(v9(data), v9(template), v9(data)), // data before its template: unknown, then decoded
		fuzzJoin(v9(samplingOptions, set(300, cat(u32(0), u32(100))), set(301, cat(u16(5), u8(3), u16(1000)))),
			v9(v9TemplateSet(templateRecord(257, v6Fields...)), set(257, v6Record, v6Record))),
		// Two templates in one set, padding after the sets, a reserved set ID.
		fuzzJoin(v9(v9TemplateSet(templateRecord(256, v9Fields...), templateRecord(258, v9Fields[:2]...), u32(0)),
			set(258, cat(ip("10.0.0.9"), ip("10.0.0.8"))), set(7, u32(1)), data, []byte{0, 0})),
		// A template redefined with other fields; one with only zero-length fields.
		fuzzJoin(v9(template, data), v9(v9TemplateSet(templateRecord(256, v9Fields[2:]...)), data),
			v9(v9TemplateSet(templateRecord(259, field{id: fieldIPv4SrcAddr, length: 0})), set(259, u32(1)))),
		// Records of several source IDs.
		fuzzJoin(v9Datagram(v9SysUptime, v9UnixSecs, 1, template, data), v9Datagram(v9SysUptime, v9UnixSecs, 2, template, data)),
	}
}

func fuzzIPFIXSeeds(valid []byte) [][]byte {
	ipfix := func(sets ...[]byte) []byte { return ipfixDatagram(1_700_000_100, 9, sets...) }
	// Variable-length fields in the 1-byte and the 3-byte (255, then 16 bits)
	// length forms, an enterprise field of each kind, all the time encodings.
	fields := []field{
		{id: fieldIPv4SrcAddr, length: 4}, {id: fieldIPv4DstAddr, length: variableLength},
		{id: 82, length: variableLength}, {id: 1, length: 4, pen: 29305}, {id: 2, length: variableLength, pen: 9},
		{id: fieldOctetTotalCount, length: 8}, {id: fieldPacketTotalCount, length: 4},
		{id: fieldFlowStartSeconds, length: 4}, {id: fieldFlowEndMicros, length: 8},
		{id: fieldProtocol, length: 1}, {id: fieldTCPFlags, length: 2},
	}
	long := bytes.Repeat([]byte{'x'}, 300)
	record := func(name []byte) []byte {
		nameLength := u8(uint8(len(name)))
		if len(name) >= 255 {
			nameLength = cat(u8(255), u16(uint16(len(name))))
		}
		return cat(ip("10.0.0.1"), u8(4), ip("10.0.0.2"), nameLength, name, u32(7), u8(2), u16(0xbeef),
			u64(1<<50), u32(9), u32(1_700_000_000), u64((1_700_000_001+ntpEpochOffset)<<32|1<<31), u8(6), u16(0x0112))
	}
	times := []field{
		{id: fieldIPv6SrcAddr, length: 16}, {id: fieldIPv6DstAddr, length: 16}, {id: fieldInBytes, length: 4},
		{id: fieldFirstSwitched, length: 4}, {id: fieldLastSwitched, length: 4},
		{id: fieldFlowStartDeltaMicro, length: 4}, {id: fieldFlowEndNanos, length: 8}, {id: fieldSamplerID, length: 2},
	}
	timesRecord := cat(ip("2001:db8::1"), ip("2001:db8::2"), u32(100), u32(1000), u32(2000), u32(5_000_000), u64(0x0123456789abcdef), u16(4))
	// Options: selector with packet interval/space (302, 305, 306), sampler
	// with sampling interval (48, 34) and random interval (50), and the
	// system init time that uptime-relative times (21, 22) need.
	options := cat(
		ipfixOptionsTemplateSet(500, []field{{id: fieldSelectorID, length: 8}},
			[]field{{id: fieldSamplingPktInterval, length: 4}, {id: fieldSamplingPktSpace, length: 4}}),
		ipfixOptionsTemplateSet(501, []field{{id: fieldSamplerID, length: 2}},
			[]field{{id: fieldSamplingInterval, length: 4}, {id: fieldSamplerRandomIntvl, length: 4}}),
		ipfixOptionsTemplateSet(502, []field{{id: 144, length: 4}}, []field{{id: fieldSystemInitMillis, length: 8}}))
	optionsData := cat(set(500, cat(u64(0), u32(1), u32(99))), set(501, cat(u16(4), u32(0), u32(64))),
		set(502, cat(u32(9), u64(1_699_000_000_000))))
	template := ipfixTemplateSet(templateRecord(400, fields...), templateRecord(401, times...))
	data := cat(set(400, record([]byte("eth0")), record(long), record(nil)), set(401, timesRecord, timesRecord))
	return [][]byte{
		fuzzJoin(valid),
		fuzzJoin(ipfix(options, optionsData, template, data)),
		fuzzJoin(ipfix(template), ipfix(data), ipfix(options), ipfix(optionsData, data)),
		// Withdrawals: one template, all data templates (ID 2), all options
		// templates (ID 3), each followed by data that needed them.
		fuzzJoin(ipfix(options, template, data),
			ipfix(ipfixTemplateSet(u16(400), u16(0)), data),
			ipfix(template, ipfixTemplateSet(u16(2), u16(0)), data),
			ipfix(options, set(3, u16(3), u16(0)), optionsData, set(3, u16(501), u16(0), u32(0)), optionsData)),
		// A data set after a 0-field template (goflow2 loops forever on it)
		// and after a template of only zero-length fields.
		fuzzJoin(ipfix(ipfixTemplateSet(templateRecord(402)), set(402, u32(0))),
			ipfix(ipfixTemplateSet(templateRecord(403, field{id: 1, length: 0}, field{id: 2, length: 0, pen: 1})), set(403, u32(0)))),
		// Several observation domains, template set padding.
		fuzzJoin(ipfixDatagram(1, 1, ipfixTemplateSet(templateRecord(400, fields...), u32(0)), set(400, record(nil))),
			ipfixDatagram(1, 2, template, set(400, record([]byte("a"))))),
	}
}

func fuzzSFlowSeeds(valid []byte) [][]byte {
	tcp := ipv4Packet(ipProtoTCP, "10.0.0.1", "10.0.0.2", tcpHeader(33000, 443, 0x18))
	udp := ipv4Packet(ipProtoUDP, "10.0.0.1", "10.0.0.3", udpHeader(5000, 53))
	icmp := ipv4Packet(1, "10.0.0.1", "10.0.0.4", []byte{8, 0, 0, 0, 0, 1, 0, 1})
	sctp := ipv4Packet(ipProtoSCTP, "10.0.0.1", "10.0.0.5", cat(u16(2905), u16(2905), u32(0), u32(0)))
	withOptions := cat(u8(0x46), ipv4Packet(ipProtoUDP, "10.0.0.1", "10.0.0.6", cat(u32(0), udpHeader(1, 2)))[1:]) // IHL 6
	fragment := ipv4Packet(ipProtoUDP, "10.0.0.1", "10.0.0.7", udpHeader(7, 8))
	fragment[6], fragment[7] = 0x00, 0x10 // a later fragment: no UDP header
	tcp6 := ipv6Packet(ipProtoTCP, "2001:db8::1", "2001:db8::2", tcpHeader(22, 60000, 0x12))
	icmp6 := ipv6Packet(58, "2001:db8::1", "2001:db8::3", []byte{128, 0, 0, 0, 0, 1, 0, 1})
	extensions := ipv6Packet(ipv6HopByHop, "2001:db8::1", "2001:db8::4",
		cat(u8(ipv6Routing), u8(0), make([]byte, 6), u8(ipv6Fragment), u8(0), make([]byte, 6),
			u8(ipProtoUDP), u8(0), u16(0), u32(1), udpHeader(1234, 4321)))
	fragment6 := ipv6Packet(ipv6Fragment, "2001:db8::1", "2001:db8::5", cat(u8(ipProtoUDP), u8(0), u16(0x0100), u32(1), udpHeader(1, 2)))
	raw := func(protocol uint32, header []byte) []byte {
		return xdrOpaque(sflowRawHeader, u32(protocol), u32(uint32(len(header)+100)), u32(4), u32(uint32(len(header))), header)
	}
	sampledIPv6 := xdrOpaque(sflowSampledIPv6, u32(1280), u32(ipProtoUDP), ip("2001:db8::1"), ip("2001:db8::2"),
		u32(53), u32(5353), u32(0), u32(0))
	counters := sflowInterfaceCountersRecord(InterfaceCounters{IfIndex: 7, Speed: 1e9, Direction: 1, Status: 3,
		InOctets: 1 << 40, InPackets: 1000, OutOctets: 1 << 41, OutPackets: 2000, InErrors: 1, OutDiscards: 2})
	ethernetCounters := xdrOpaque(2, make([]byte, 52))
	expandedCounters := xdrOpaque(sflowExpandedCounterSample, u32(4), u32(0), u32(3), u32(2), counters, ethernetCounters)
	extendedSwitch := xdrOpaque(1001, u32(100), u32(0), u32(200), u32(0))
	return [][]byte{
		fuzzJoin(valid),
		fuzzJoin(sflowDatagram("198.51.100.1", 1,
			sfFlowSample(10, 1, 2, raw(sflowHeaderEthernet, ethernet(etherTypeIPv4, nil, tcp))),
			sfFlowSample(10, 1, 2, raw(sflowHeaderEthernet, ethernet(etherTypeIPv4, []uint16{10}, udp))),
			sfFlowSample(10, 1, 2, raw(sflowHeaderEthernet, ethernet(etherTypeIPv4, nil, icmp))),
			sfFlowSample(10, 1, 2, raw(sflowHeaderEthernet, ethernet(etherTypeIPv4, nil, sctp))),
			sfFlowSample(10, 1, 2, raw(sflowHeaderEthernet, ethernet(etherTypeIPv4, nil, withOptions))),
			sfFlowSample(10, 1, 2, raw(sflowHeaderEthernet, ethernet(etherTypeIPv4, nil, fragment))))),
		// 802.1Q, Q-in-Q (0x88a8 outer; the pre-standard 0x9100 too), IPv6 with extension headers.
		fuzzJoin(sflowDatagram("2001:db8::ff", 2,
			sfFlowSample(100, 1, 2, raw(sflowHeaderEthernet, ethernet(etherTypeIPv6, []uint16{20}, tcp6))),
			sfFlowSample(100, 1, 2, raw(sflowHeaderEthernet, cat(ethernet(etherTypeQinQ, nil, nil)[:12],
				u16(etherTypeQinQ), u16(100), u16(etherTypeVLAN), u16(200), u16(etherTypeIPv6), icmp6))),
			sfFlowSample(100, 1, 2, raw(sflowHeaderEthernet, cat(ethernet(etherTypeQinQ2, nil, nil)[:12],
				u16(etherTypeQinQ2), u16(100), u16(etherTypeVLAN), u16(200), u16(etherTypeIPv4), udp))),
			sfFlowSample(100, 1, 2, raw(sflowHeaderEthernet, ethernet(etherTypeIPv6, nil, extensions))),
			sfFlowSample(100, 1, 2, raw(sflowHeaderEthernet, ethernet(etherTypeIPv6, nil, fragment6))))),
		// IP headers without Ethernet, sampled IP records, extended records,
		// interfaces discarded (format 1), to several (format 2), unknown.
		fuzzJoin(sflowDatagram("198.51.100.2", 3,
			sfFlowSample(1, 1<<30|5, 2<<30|3, raw(sflowHeaderIPv4, tcp), extendedSwitch),
			sfFlowSample(1, sflowIfUnknown, 9, raw(sflowHeaderIPv6, tcp6)),
			sfFlowSample(1, 4, 5, sampledIPv6, extendedSwitch),
			sfFlowSample(1, 4, 5, sflowSampledIPv4Record(40, 6, "10.9.0.1", "10.9.0.2", 80, 8080, 0x10)),
			sfExpandedFlowSample(4096, 0x3fffffff, 12, raw(sflowHeaderEthernet, ethernet(etherTypeIPv4, nil, udp)), sampledIPv6))),
		// Counter samples, compact and expanded, with a record kind skipped;
		// an enterprise sample; more samples announced than carried.
		fuzzJoin(sflowDatagram("198.51.100.3", 4, sfCounterSample(counters, ethernetCounters), expandedCounters,
			xdrOpaque(9<<12|1, u32(0)))),
		fuzzJoin(cat(sflowDatagram("198.51.100.4", 5, sfCounterSample(counters))[:24], u32(3),
			sfFlowSample(1, 1, 2, raw(sflowHeaderEthernet, ethernet(etherTypeIPv4, nil, tcp))))),
	}
}

// The seeds must reach the code that emits records on every path, or the
// fuzzer starts from the error paths only.
func TestFuzzSeedsEmitRecords(t *testing.T) {
	captures, err := fuzzCaptureSeeds()
	require.NoError(t, err)
	for name, seeds := range map[string]map[flow.Protocol][][]byte{"hand-built": fuzzHandSeeds(), "capture": captures} {
		for proto := flow.ProtoNetFlowV5; proto <= flow.ProtoSFlowV5; proto++ {
			records := 0
			for _, s := range seeds[proto] {
				d := newTestDecoder(t, DefaultConfiguration())
				for _, p := range fuzzSplit(s) {
					out, _ := d.Decode(exporterA, p, testReceived, nil)
					records += len(out)
				}
			}
			require.Positivef(t, records, "%s seeds of %s", name, proto)
		}
	}
}

// The fuzz targets tell a bug from bad input by errPanic: a panic must show
// in the error even when the datagram already failed for a malformed part.
func TestPanicAfterMalformedSetIsReported(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	require.NoError(t, d.exporter(exporterA).templates.AddTemplate(9, 77, 256, "not a template"))
	malformed := v9TemplateSet(templateRecord(100, v9Fields...)) // template IDs start at 256
	_, err := d.Decode(exporterA, v9(malformed, set(256, v9Record("10.0.0.1", "10.0.0.2", 1, 1))), testReceived, nil)
	require.ErrorIs(t, err, errPanic)
	require.Equal(t, map[string]uint64{"malformed": 1}, statsOf(t, d, "192.0.2.1").Errors, "one datagram, one reason")
}

// Found by FuzzNetFlowV9 and FuzzIPFIX (testdata/fuzz): a 64-bit counter times
// the sampling rate wrapped around to a small count.
func TestSampledCountersSaturate(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	fields := []field{{id: fieldIPv4SrcAddr, length: 4}, {id: fieldOctetTotalCount, length: 8},
		{id: fieldPacketTotalCount, length: 8}, {id: fieldSamplingInterval, length: 4}}
	got, err := d.Decode(exporterA, ipfixDatagram(1, 1, ipfixTemplateSet(templateRecord(256, fields...)),
		set(256, cat(ip("10.0.0.1"), u64(1<<62), u64(1<<61), u32(4)))), testReceived, nil)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, uint64(math.MaxUint64), got[0].Bytes)
	require.Equal(t, uint64(1<<63), got[0].Packets)
}
