package decode

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
)

// validDatagrams is one valid, self-contained datagram of each kind.
func validDatagrams() map[string][]byte {
	v5r := v5Record{src: "10.0.0.1", dst: "10.0.0.2", packets: 1, bytes: 100, proto: 6}
	tcp := ipv4Packet(ipProtoTCP, "10.0.0.1", "10.0.0.2", tcpHeader(33000, 443, 0x18))
	udp6 := ipv6Packet(ipProtoUDP, "2001:db8::1", "2001:db8::2", udpHeader(5353, 53))
	ipfixFields := []field{
		{id: fieldIPv6SrcAddr, length: 16}, {id: fieldIPv6DstAddr, length: 16},
		{id: 82, length: variableLength}, {id: fieldOctetTotalCount, length: 8},
		{id: fieldPacketTotalCount, length: 8}, {id: fieldFlowEndMillis, length: 8},
	}
	ipfixRecord := cat(ip("2001:db8::1"), ip("2001:db8::2"), u8(4), []byte("eth0"), u64(5000), u64(5), u64(1_700_000_050_000))
	return map[string][]byte{
		"netflow-v5": v5Datagram(1000, 1_700_000_000, 0, 0, 0, 10, v5r, v5r),
		"netflow-v9": v9(
			v9OptionsTemplateSet(300, []field{{id: 1, length: 4}}, []field{{id: fieldSamplingInterval, length: 4}}),
			set(300, cat(u32(0), u32(512))),
			v9TemplateSet(templateRecord(256, v9Fields...)),
			set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10), v9Record("10.0.0.3", "10.0.0.4", 2000, 20))),
		"ipfix": ipfixDatagram(1_700_000_100, 9,
			ipfixOptionsTemplateSet(500, []field{{id: fieldSelectorID, length: 8}},
				[]field{{id: fieldSamplingPktInterval, length: 4}, {id: fieldSamplingPktSpace, length: 4}}),
			set(500, cat(u64(0), u32(1), u32(99))),
			ipfixTemplateSet(templateRecord(400, ipfixFields...)),
			set(400, ipfixRecord, ipfixRecord)),
		"sflow-v5": sflowDatagram("198.51.100.1", 3,
			sfFlowSample(10, 5, 6, sflowRawHeaderRecord(1514, ethernet(etherTypeIPv4, []uint16{100}, tcp))),
			sfCounterSample(sflowInterfaceCountersRecord(InterfaceCounters{IfIndex: 3})),
			sfExpandedFlowSample(1000, 7, 8, sflowRawHeaderRecord(90, ethernet(etherTypeIPv6, nil, udp6)))),
	}
}

// requireSentinel checks err wraps one of the documented errors and no panic.
func requireSentinel(t *testing.T, err error) {
	t.Helper()
	require.NotErrorIs(t, err, errPanic)
	require.True(t, errors.Is(err, ErrMalformed) || errors.Is(err, ErrTemplateUnknown) || errors.Is(err, ErrUnknownVersion),
		"error %v wraps no sentinel", err)
}

func errorCount(s ExporterStats) uint64 {
	var n uint64
	for _, c := range s.Errors {
		n += c
	}
	return n
}

func TestValidDatagramsDecode(t *testing.T) {
	want := map[string]int{"netflow-v5": 2, "netflow-v9": 2, "ipfix": 2, "sflow-v5": 2}
	for name, p := range validDatagrams() {
		d := newTestDecoder(t, DefaultConfiguration())
		got, err := d.Decode(exporterA, p, testReceived, nil)
		require.NoError(t, err, name)
		require.Len(t, got, want[name], name)
	}
}

func TestTruncatedDatagrams(t *testing.T) {
	for name, p := range validDatagrams() {
		t.Run(name, func(t *testing.T) {
			var failed, clean int
			for n := range len(p) {
				d := newTestDecoder(t, DefaultConfiguration())
				_, err := d.Decode(exporterA, p[:n], testReceived, nil)
				s := statsOf(t, d, "192.0.2.1")
				require.Equal(t, uint64(1), s.Datagrams)
				if err == nil {
					clean++
					require.Zero(t, errorCount(s), "prefix %d", n)
					continue
				}
				failed++
				requireSentinel(t, err)
				require.NotZero(t, errorCount(s), "prefix %d: error not counted", n)
			}
			require.NotZero(t, failed)
			if name != "netflow-v9" {
				// Only v9, with no message length, can end cleanly on a set boundary.
				require.Zero(t, clean)
			}
		})
	}
}

func TestRandomDatagrams(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := newTestDecoder(t, DefaultConfiguration())
	prefixes := [][]byte{nil, {0, 5}, {0, 9}, {0, 10}, {0, 0, 0, 5}}
	var out []flow.Record
	for i := range 10_000 {
		p := append([]byte{}, prefixes[i%len(prefixes)]...)
		for range rng.IntN(1500) {
			p = append(p, byte(rng.Uint32()))
		}
		if len(p) > 3 && p[1] == 10 { // give IPFIX a plausible length
			p[2], p[3] = byte(len(p)>>8), byte(len(p))
		}
		var err error
		out, err = d.Decode(netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 4)}), p, testReceived, out[:0])
		if err != nil {
			requireSentinel(t, err)
		}
	}
}

func TestMutatedDatagrams(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for name, valid := range validDatagrams() {
		d := newTestDecoder(t, DefaultConfiguration())
		var out []flow.Record
		for range 5_000 {
			p := append([]byte{}, valid...)
			for range 1 + rng.IntN(4) {
				p[rng.IntN(len(p))] = byte(rng.Uint32())
			}
			var err error
			out, err = d.Decode(exporterA, p, testReceived, out[:0])
			if err != nil {
				requireSentinel(t, err)
			}
		}
		require.Equal(t, uint64(5_000), statsOf(t, d, "192.0.2.1").Datagrams, name)
	}
}

func TestUnknownVersion(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	_, err := d.Decode(exporterA, []byte{0, 7, 0, 1, 2, 3, 4, 5}, testReceived, nil)
	require.ErrorIs(t, err, ErrUnknownVersion)
	_, err = d.Decode(exporterA, []byte{0, 0, 0, 4, 0, 0, 0, 1}, testReceived, nil) // sFlow v4
	require.ErrorIs(t, err, ErrUnknownVersion)
	_, err = d.Decode(exporterA, []byte{0, 5}, testReceived, nil)
	require.ErrorIs(t, err, ErrMalformed)
	s := statsOf(t, d, "192.0.2.1")
	require.Equal(t, map[string]uint64{"unknown_version": 2, "malformed": 1}, s.Errors)
	require.Equal(t, uint64(3), s.Datagrams)
	require.Empty(t, s.Protocols)
}

func TestPanicIsRecovered(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	// A foreign value stored through goflow2's template interface makes the
	// data set lookup panic: Decode must turn it into ErrMalformed.
	require.NoError(t, d.exporter(exporterA).templates.AddTemplate(9, 77, 256, "not a template"))
	got, err := d.Decode(exporterA, v9(set(256, v9Record("10.0.0.1", "10.0.0.2", 1, 1))), testReceived, []flow.Record{{}})
	require.ErrorIs(t, err, ErrMalformed)
	require.ErrorIs(t, err, errPanic)
	require.Len(t, got, 1, "out is returned")
	s := statsOf(t, d, "192.0.2.1")
	require.Equal(t, map[string]uint64{"malformed": 1}, s.Errors)

	// The exporter's lock was released.
	_, err = d.Decode(exporterA, validDatagrams()["netflow-v5"], testReceived, nil)
	require.NoError(t, err)
}

func TestConcurrentDecode(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	datagrams := validDatagrams()
	exporters := []netip.Addr{exporterA, exporterB, exporterS}
	const goroutines, rounds = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			var out []flow.Record
			for i := range rounds {
				for _, name := range []string{"netflow-v5", "netflow-v9", "ipfix", "sflow-v5"} {
					var err error
					out, err = d.Decode(exporters[(g+i)%len(exporters)], datagrams[name], testReceived, out[:0])
					if err != nil {
						t.Error(err)
						return
					}
				}
				if i%50 == 0 {
					_ = d.Exporters()
					_, _ = d.State()
				}
			}
		})
	}
	wg.Wait()
	var flows, datagramCount uint64
	for _, s := range d.Exporters() {
		flows += s.Flows
		datagramCount += s.Datagrams
		require.Len(t, s.Protocols, 4)
	}
	require.Equal(t, uint64(goroutines*rounds*4), datagramCount)
	require.Equal(t, uint64(goroutines*rounds*8), flows)
}

func TestNew(t *testing.T) {
	for _, cfg := range []Configuration{
		{MaxTemplatesPerExporter: -1},
		{MaxExporters: -1},
		{MaxRecordsPerDatagram: -1},
		{MaxFieldLength: -1},
		{MaxFieldLength: 65535},
		{TemplateTimeout: -time.Second},
		{TemplateTimeout: time.Microsecond},
		{HoldTime: -time.Second},
		{HoldBytes: -1},
		{SamplingOverride: map[netip.Addr]uint32{{}: 10}},
	} {
		_, err := New(cfg)
		require.Error(t, err, "%+v", cfg)
	}
	d, err := New(Configuration{})
	require.NoError(t, err, "zero values take the defaults")
	require.Equal(t, limits{
		maxTemplates: 1024, maxRecords: 4096, maxFieldLength: 4096, templateTimeout: 3_600_000,
		holdTime: 2000, holdDatagrams: 1000, holdBytes: 2 << 20,
	}, d.limits)
	require.Equal(t, 10_000, d.maxExporters)
	d, err = New(Configuration{HoldDatagrams: -1})
	require.NoError(t, err)
	require.Zero(t, d.limits.holdDatagrams, "holding disabled")
}

func TestMain(m *testing.M) {
	// Decoding errors are logged (throttled per exporter); tests make many exporters.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
