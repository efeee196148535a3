package flowgen

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/decode"
	"github.com/tmsd/tmsd/internal/flow"
)

type packet struct {
	src     netip.Addr
	payload []byte
	at      time.Time // arrival
}

// receiver keeps copies of every datagram sent to it, in arrival order.
type receiver struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []packet
	done chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	bigReceiveBuffer(t, conn) // so a burst is never dropped
	r := &receiver{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.got = append(r.got, packet{src: from.Addr(), payload: append([]byte(nil), buf[:n]...), at: time.Now()})
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-r.done
	})
	return r
}

func (r *receiver) addr() string { return r.conn.LocalAddr().String() }

// wait returns the datagrams once n have arrived, failing after a while.
func (r *receiver) wait(t *testing.T, n uint64) []packet {
	t.Helper()
	var got []packet
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		got = r.got
		return uint64(len(got)) >= n
	}, 10*time.Second, 5*time.Millisecond, "datagrams lost")
	time.Sleep(20 * time.Millisecond) // anything beyond n would be a bug: let it show
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got
}

func decodeAll(t *testing.T, pkts []packet) []flow.Record {
	t.Helper()
	d, err := decode.New(decode.DefaultConfiguration())
	require.NoError(t, err)
	var recs []flow.Record
	for i, p := range pkts {
		recs, err = d.Decode(p.src, p.payload, time.Now(), recs)
		require.NoError(t, err, "datagram %d from %s", i, p.src)
	}
	return recs
}

// topOfRecords aggregates decoded records the way the truth does.
func topOfRecords(recs []flow.Record) (Counters, *Top) {
	var total Counters
	dims := map[string]map[string]*Counters{}
	add := func(dim, key string, c *Counters) {
		m := dims[dim]
		if m == nil {
			m = map[string]*Counters{}
			dims[dim] = m
		}
		v := m[key]
		if v == nil {
			v = &Counters{}
			m[key] = v
		}
		v.add(c)
	}
	for i := range recs {
		r := &recs[i]
		c := Counters{Bytes: r.Bytes, Packets: r.Packets, Flows: 1}
		total.add(&c)
		add("srcip", r.SrcAddr.String(), &c)
		add("dstip", r.DstAddr.String(), &c)
		add("ip", r.SrcAddr.String(), &c)
		add("ip", r.DstAddr.String(), &c)
		add("dstport", PortKey(r.DstPort, r.Proto), &c)
		add("srcport", PortKey(r.SrcPort, r.Proto), &c)
		add("proto", strconv.Itoa(int(r.Proto)), &c)
		add("exporter", r.Exporter.String(), &c)
	}
	list := func(dim string) []Entry {
		var out []Entry
		for k, c := range dims[dim] {
			out = append(out, Entry{Key: k, Counters: *c})
		}
		SortEntries(out)
		return out[:min(TopN, len(out))]
	}
	return total, &Top{
		SrcIP: list("srcip"), DstIP: list("dstip"), IP: list("ip"),
		DstPort: list("dstport"), SrcPort: list("srcport"), Proto: list("proto"), Exporter: list("exporter"),
	}
}

// TestDecodedEqualsTruth sends each format to a socket, decodes what
// arrived with tmsd's decoder and requires it to be exactly the truth.
func TestDecodedEqualsTruth(t *testing.T) {
	for _, tc := range []struct {
		format   string
		sampling uint32
	}{
		{FormatV5, 1}, {FormatV9, 1}, {FormatIPFIX, 1}, {FormatSFlow, 1},
		{FormatV5, 10}, {FormatV9, 10}, {FormatIPFIX, 10}, {FormatSFlow, 10},
	} {
		t.Run(fmt.Sprintf("%s/sampling=%d", tc.format, tc.sampling), func(t *testing.T) {
			r := newReceiver(t)
			const count = 20_000
			before := time.Now()
			truth, err := Run(context.Background(), Config{
				Format: tc.format, Target: r.addr(), Rate: 200_000, Count: count, Duration: time.Minute,
				Exporters: 3, Seed: 7, Sampling: tc.sampling, Pool: 64,
			})
			require.NoError(t, err)
			require.Equal(t, uint64(count), truth.Sent.Flows, "the count is exact")
			require.Equal(t, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}, truth.Exporters)
			if tc.format == FormatV9 || tc.format == FormatIPFIX {
				require.GreaterOrEqual(t, truth.Sent.TemplateDatagrams, uint64(3))
			}

			pkts := r.wait(t, truth.Sent.Datagrams)
			require.Len(t, pkts, int(truth.Sent.Datagrams), "zero loss, nothing extra")
			sources := map[netip.Addr]bool{}
			for _, p := range pkts {
				sources[p.src] = true
			}
			require.Len(t, sources, 3, "each exporter its own source address")

			recs := decodeAll(t, pkts)
			total, top := topOfRecords(recs)
			require.Equal(t, truth.Total, total)
			require.Equal(t, truth.Total.Flows, uint64(count))
			require.Equal(t, truth.Top.SrcIP[:10], top.SrcIP[:10])
			require.Equal(t, truth.Top.DstPort[:10], top.DstPort[:10])
			require.Equal(t, *truth.Top, *top, "every top list, whole")

			hasV6 := false
			for i := range recs {
				rec := &recs[i]
				require.Equal(t, tc.sampling, rec.SamplingRate)
				hasV6 = hasV6 || !rec.SrcAddr.Is4()
				if tc.format == FormatSFlow {
					continue // sFlow carries no flow times
				}
				// Flows end now, so a collector puts them in the current minute.
				require.InDelta(t, before.UnixMilli(), rec.End, 5_000, "end of %+v", rec)
				require.LessOrEqual(t, rec.Start, rec.End)
				require.Less(t, rec.End-rec.Start, int64(60_001))
			}
			require.Equal(t, tc.format != FormatV5, hasV6, "IPv6 records mixed in")
		})
	}
}

// TestSpread checks that spread sources cycle through exactly the
// configured number of addresses while the kept hosts stay exact.
func TestSpread(t *testing.T) {
	spreadV4 := netip.MustParsePrefix("100.0.0.0/6")
	for _, format := range []string{FormatV5, FormatV9, FormatIPFIX, FormatSFlow} {
		t.Run(format, func(t *testing.T) {
			r := newReceiver(t)
			const count, spread = 20_000, 3_000
			truth, err := Run(context.Background(), Config{
				Format: format, Target: r.addr(), Rate: 200_000, Count: count, Duration: time.Minute,
				Exporters: 3, Seed: 7, Pool: 64, Spread: spread, SpreadKeep: 50,
			})
			require.NoError(t, err)
			require.NotNil(t, truth.Spread)
			recs := decodeAll(t, r.wait(t, truth.Sent.Datagrams))

			var kept []flow.Record
			var spreadTotal Counters
			distinct := map[flow.Addr]bool{}
			for _, rec := range recs {
				a := rec.SrcAddr.Netip()
				if spreadV4.Contains(a) {
					distinct[rec.SrcAddr] = true
					spreadTotal.add(&Counters{Bytes: rec.Bytes, Packets: rec.Packets, Flows: 1})
					continue
				}
				kept = append(kept, rec)
			}
			require.Equal(t, truth.Spread.Counters, spreadTotal)
			require.Greater(t, truth.Spread.Flows, uint64(2*spread), "every address is used")
			require.Equal(t, spread, len(distinct))
			total, top := topOfRecords(recs)
			require.Equal(t, truth.Total, total)
			_, keptTop := topOfRecords(kept)
			require.Equal(t, truth.Top.SrcIP, keptTop.SrcIP, "kept hosts exact")
			require.Equal(t, truth.Top.DstIP, top.DstIP)
		})
	}
}

// TestSequenceNumbers checks each exporter's stream is gapless as a
// collector's loss accounting sees it.
func TestSequenceNumbers(t *testing.T) {
	for _, format := range []string{FormatV5, FormatV9, FormatIPFIX, FormatSFlow} {
		t.Run(format, func(t *testing.T) {
			r := newReceiver(t)
			truth, err := Run(context.Background(), Config{
				Format: format, Target: r.addr(), Rate: 300_000, Count: 30_000, Duration: time.Minute,
				Exporters: 2, Sampling: 4, TemplatesEvery: 10 * time.Millisecond, Pool: 16,
			})
			require.NoError(t, err)
			pkts := r.wait(t, truth.Sent.Datagrams)
			type state struct {
				started bool
				next    uint32 // expected sequence number
				sample  uint32 // sFlow: next sample sequence
			}
			st := map[netip.Addr]*state{}
			for _, p := range pkts {
				s := st[p.src]
				if s == nil {
					s = &state{}
					st[p.src] = s
				}
				b := p.payload
				var seq, adv uint32
				switch format {
				case FormatV5:
					seq, adv = binary.BigEndian.Uint32(b[16:]), uint32(binary.BigEndian.Uint16(b[2:]))
				case FormatV9:
					seq, adv = binary.BigEndian.Uint32(b[12:]), 1
				case FormatIPFIX:
					seq = binary.BigEndian.Uint32(b[8:])
					adv = ipfixDataRecords(t, b)
				case FormatSFlow:
					seq, adv = binary.BigEndian.Uint32(b[16:]), 1
					n := binary.BigEndian.Uint32(b[24:])
					for i := range n {
						sampleSeq := binary.BigEndian.Uint32(b[28+i*sflowSample+8:])
						require.Equal(t, s.sample+1, sampleSeq)
						s.sample++
					}
				}
				if format == FormatSFlow {
					require.Equal(t, s.next+1, seq, "from %s", p.src)
				} else {
					require.Equal(t, s.next, seq, "from %s", p.src)
				}
				s.next += adv
			}
			require.Len(t, st, 2)
		})
	}
}

// ipfixDataRecords counts the data records of an IPFIX message (templates
// have fixed, known sizes here: record lengths come from the codec).
func ipfixDataRecords(t *testing.T, b []byte) uint32 {
	c := nfCodec{version: 10}
	var n uint32
	for body := b[ipfixHeader:]; len(body) > 0; {
		id, l := binary.BigEndian.Uint16(body), int(binary.BigEndian.Uint16(body[2:]))
		require.GreaterOrEqual(t, l, setHeader)
		switch id {
		case templateV4:
			n += uint32((l - setHeader) / c.recordLen(false))
		case templateV6:
			n += uint32((l - setHeader) / c.recordLen(true))
		case templateOptions:
			n += uint32((l - setHeader) / 12)
		}
		body = body[l:]
	}
	return n
}

func TestSameSeedSameTruth(t *testing.T) {
	r := newReceiver(t)
	run := func(seed uint64) *Truth {
		truth, err := Run(context.Background(), Config{
			Format: FormatIPFIX, Target: r.addr(), Count: 5_000, Rate: 500_000, Seed: seed, Exporters: 2,
		})
		require.NoError(t, err)
		return truth
	}
	a, b, c := run(3), run(3), run(4)
	require.Equal(t, a.Total, b.Total)
	require.Equal(t, a.Top, b.Top)
	require.NotEqual(t, a.Top.SrcIP, c.Top.SrcIP)
}

// sink is a socket nobody reads: flat-out runs send there, the kernel drops.
func sink(t *testing.T) string {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn.LocalAddr().String()
}

func TestDurationAndRate(t *testing.T) {
	r := newReceiver(t)
	t.Run("duration bounds a flat-out run", func(t *testing.T) {
		start := time.Now()
		truth, err := Run(context.Background(), Config{
			Format: FormatV5, Target: sink(t), Duration: 200 * time.Millisecond, Exporters: 1, Pool: 8,
		})
		require.NoError(t, err)
		// One-sided where a busy machine could only make it slower.
		require.Less(t, time.Since(start), 5*time.Second)
		require.GreaterOrEqual(t, truth.ElapsedS, 0.2)
		require.NotZero(t, truth.Sent.Flows)
	})
	t.Run("rate", func(t *testing.T) {
		truth, err := Run(context.Background(), Config{
			Format: FormatSFlow, Target: r.addr(), Rate: 20_000, Count: 6_000, Exporters: 2,
		})
		require.NoError(t, err)
		require.Equal(t, uint64(6_000), truth.Sent.Flows)
		// The limiter must hold the run back to the rate; a loaded machine can only stretch it.
		require.GreaterOrEqual(t, truth.ElapsedS, 0.25, "6000 samples at 20000/s")
		require.Less(t, truth.ElapsedS, 5.0)
	})
	t.Run("templates resent", func(t *testing.T) {
		truth, err := Run(context.Background(), Config{
			Format: FormatV9, Target: r.addr(), Rate: 10_000, Duration: 300 * time.Millisecond,
			Exporters: 2, TemplatesEvery: 50 * time.Millisecond,
		})
		require.NoError(t, err)
		// At the start and at least once more each; exactly how often depends on scheduling.
		require.GreaterOrEqual(t, truth.Sent.TemplateDatagrams, uint64(2*2))
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		truth, err := Run(ctx, Config{Format: FormatV9, Target: r.addr(), Rate: 1000, Duration: time.Minute})
		require.NoError(t, err)
		require.Less(t, truth.ElapsedS, 1.0)
	})
}

func TestFewerFlowsThanExporters(t *testing.T) {
	r := newReceiver(t)
	truth, err := Run(context.Background(), Config{Format: FormatV5, Target: r.addr(), Count: 2, Exporters: 4})
	require.NoError(t, err)
	require.Equal(t, uint64(2), truth.Sent.Flows)
	pkts := r.wait(t, truth.Sent.Datagrams)
	total, _ := topOfRecords(decodeAll(t, pkts))
	require.Equal(t, truth.Total, total)
	require.Len(t, truth.Exporters, 4)
	require.Len(t, truth.Top.Exporter, 2, "idle exporters are in no top list")
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Format: "v7", Target: "127.0.0.1:9", Count: 1},
		{Format: FormatV5, Target: "127.0.0.1:9"},
		{Format: FormatV5, Target: "127.0.0.1:9", Duration: time.Hour},
		{Format: FormatV5, Target: "127.0.0.1:9", Count: 1, Sampling: 20_000},
		{Format: FormatV5, Target: "127.0.0.1:9", Count: 1, Ports: []string{"https"}},
		{Format: FormatV5, Target: "127.0.0.1:9", Count: 1, Hosts: 1},
		{Format: FormatV5, Target: "[::1]:9", Count: 1},
	} {
		_, err := Run(context.Background(), cfg)
		require.Error(t, err, "%+v", cfg)
	}
}

func TestWriteJSON(t *testing.T) {
	r := newReceiver(t)
	truth, err := Run(context.Background(), Config{Format: FormatSFlow, Target: r.addr(), Count: 100, Exporters: 1})
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "truth.json")
	require.NoError(t, truth.WriteJSON(path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var back map[string]any
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, "sflow", back["format"])
	top := back["top"].(map[string]any)
	for _, dim := range []string{"srcip", "dstip", "ip", "dstport", "srcport", "proto", "exporter"} {
		require.NotEmpty(t, top[dim], dim)
	}
	var pe *os.PathError
	require.ErrorAs(t, truth.WriteJSON(filepath.Join(t.TempDir(), "no", "such", "dir")), &pe)
}

// BenchmarkFlatOut measures the flat-out send rate of one exporter (one
// goroutine, one core) per format, to a socket nobody reads.
func BenchmarkFlatOut(b *testing.B) {
	for _, format := range []string{FormatV5, FormatV9, FormatIPFIX, FormatSFlow} {
		b.Run(format, func(b *testing.B) {
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(b, err)
			defer func() { _ = conn.Close() }()
			var flows uint64
			var elapsed float64
			for b.Loop() {
				truth, err := Run(context.Background(), Config{
					Format: format, Target: conn.LocalAddr().String(), Count: 2_000_000, Duration: time.Minute, Exporters: 1,
				})
				require.NoError(b, err)
				flows += truth.Sent.Flows
				elapsed += truth.ElapsedS
			}
			b.ReportMetric(float64(flows)/elapsed, "flows/s")
		})
	}
}
