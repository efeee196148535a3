package flowgen

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/decode"
	"github.com/tmsd/tmsd/internal/flow"
)

// tupleKey is what a collector aggregating by full tuple keys a flow on.
type tupleKey struct {
	minute           int64
	exporter         flow.Addr
	inIf, outIf      uint32
	src, dst         flow.Addr
	srcPort, dstPort uint16
	proto            uint8
}

// decodedTuples decodes what r received and counts flows per distinct tuple
// and minute, the minute of the flow's end as the collector decodes it
// (sFlow, which carries no times: of the datagram's arrival). ambiguous is
// set when an sFlow datagram arrived within a second after a minute began,
// so its minute may differ from the one flowgen stamped it with.
func decodedTuples(t *testing.T, pkts []packet) (flows uint64, tuples map[tupleKey]uint64, ambiguous bool) {
	t.Helper()
	d, err := decode.New(decode.DefaultConfiguration())
	require.NoError(t, err)
	tuples = map[tupleKey]uint64{}
	var recs []flow.Record
	for i, p := range pkts {
		recs, err = d.Decode(p.src, p.payload, p.at, recs[:0])
		require.NoError(t, err, "datagram %d", i)
		if p.at.Unix()/60 != p.at.Add(-time.Second).Unix()/60 {
			ambiguous = ambiguous || (len(recs) > 0 && recs[0].Export == flow.ProtoSFlowV5)
		}
		for _, r := range recs {
			k := tupleKey{minute: r.End / 60_000, exporter: r.Exporter, inIf: r.InIf, outIf: r.OutIf,
				src: r.SrcAddr, dst: r.DstAddr, srcPort: r.SrcPort, dstPort: r.DstPort, proto: r.Proto}
			tuples[k]++
			flows++
		}
	}
	return flows, tuples, ambiguous
}

// TestTupleRepetition sends each format with the default (backbone) profile
// and with the pool profile, and counts flows per distinct (exporter,
// interfaces, 5-tuple, minute) in what arrived: the backbone profile must
// not repeat tuples (≤ 1.05 flows per tuple, as NetFlow/IPFIX exports in
// testdata/pcaps: 1.00) although every datagram is sent many times over,
// and the truth's own count of distinct tuples must equal the decoded one.
// The pool is cut to 32 datagrams per exporter so that each is sent 50 to
// 300 times: far more than the default pool's sends per minute at 3M
// flows/s, the harder case for uniqueness.
func TestTupleRepetition(t *testing.T) {
	for _, profile := range []string{ProfileBackbone, ProfilePool} {
		for _, format := range []string{FormatV5, FormatV9, FormatIPFIX, FormatSFlow} {
			t.Run(profile+"/"+format, func(t *testing.T) {
				r := newReceiver(t)
				const count = 120_000
				truth, err := Run(context.Background(), Config{
					Format: format, Target: r.addr(), Rate: 600_000, Count: count, Duration: time.Minute,
					Exporters: 2, Seed: 11, Pool: 32, Profile: profile,
				})
				require.NoError(t, err)
				flows, tuples, ambiguous := decodedTuples(t, r.wait(t, truth.Sent.Datagrams))
				require.Equal(t, uint64(count), flows)
				perTuple := float64(flows) / float64(len(tuples))
				t.Logf("%s %s: %d flows, %d distinct tuples: %.4f flows per tuple (truth: %d, %.4f over %d minutes)",
					profile, format, flows, len(tuples), perTuple, truth.Tuples.Distinct, truth.Tuples.FlowsPerTuple, truth.Tuples.Minutes)
				if profile == ProfileBackbone {
					require.LessOrEqual(t, perTuple, 1.05, "flows per distinct tuple")
				} else {
					require.Greater(t, perTuple, 20.0, "the pool profile repeats its pool")
				}
				if ambiguous {
					t.Logf("sFlow run across a minute boundary: the truth's per-minute count is not compared")
					return
				}
				require.NotNil(t, truth.Tuples)
				require.Equal(t, uint64(len(tuples)), truth.Tuples.Distinct, "the truth's distinct tuples")
				require.InDelta(t, perTuple, truth.Tuples.FlowsPerTuple, 1e-9)
			})
		}
	}
}

// TestBackboneModel checks the default workload's shape in what arrives:
// sources from a pool of 100,000 and destinations from one of 10,000 that
// never meet, one service port of DefaultPorts and one client port on
// every flow, 48 interfaces a side.
func TestBackboneModel(t *testing.T) {
	require.GreaterOrEqual(t, len(DefaultPorts), 50)
	services := map[string]bool{}
	protos := map[uint8]bool{}
	for _, p := range DefaultPorts {
		svc, err := parseService(p)
		require.NoError(t, err)
		require.False(t, services[p], "%s twice", p)
		services[PortKey(svc.port, svc.proto)] = true
		protos[svc.proto] = true
		require.False(t, svc.port >= EphemeralLo && svc.port < EphemeralHi, "%s is in the ephemeral range", p)
	}
	require.Equal(t, map[uint8]bool{protoTCP: true, protoUDP: true}, protos)

	cfg := Config{Format: FormatIPFIX, Count: 1}
	require.NoError(t, cfg.defaults())
	require.Equal(t, Config{Format: FormatIPFIX, Count: 1, Exporters: 4, Profile: ProfileBackbone, Hosts: 100_000, DstHosts: 10_000,
		Zipf: 1.1, Ports: DefaultPorts, Sampling: 1, Batch: 64, TemplatesEveryDatagrams: 100, TupleRepeat: 1, Pool: 2048, SpreadKeep: 100}, cfg)

	r := newReceiver(t)
	truth, err := Run(context.Background(), Config{Format: FormatIPFIX, Target: r.addr(), Rate: 500_000, Count: 100_000, Seed: 3})
	require.NoError(t, err)
	recs := decodeAll(t, r.wait(t, truth.Sent.Datagrams))
	srcs, dsts := map[flow.Addr]bool{}, map[flow.Addr]bool{}
	maxIf := uint32(0)
	for _, rec := range recs {
		srcs[rec.SrcAddr], dsts[rec.DstAddr] = true, true
		eph := func(p uint16) bool { return p >= EphemeralLo && p < EphemeralHi }
		switch {
		case eph(rec.SrcPort):
			require.True(t, services[PortKey(rec.DstPort, rec.Proto)], "%+v", rec)
		case eph(rec.DstPort):
			require.True(t, services[PortKey(rec.SrcPort, rec.Proto)], "%+v", rec)
		default:
			require.Fail(t, "no client port", "%+v", rec)
		}
		require.NotZero(t, rec.InIf)
		require.NotZero(t, rec.OutIf)
		maxIf = max(maxIf, rec.InIf, rec.OutIf)
	}
	require.Equal(t, uint32(Interfaces), maxIf)
	require.LessOrEqual(t, len(dsts), 10_000, "destinations come from their own pool of 10,000")
	require.Greater(t, len(srcs), 12_000, "sources come from a pool of 100,000, larger than the destinations'")
	for a := range dsts {
		require.False(t, srcs[a], "%s is a source and a destination", a.String())
	}
	require.Equal(t, &Workload{Profile: ProfileBackbone, Sources: 100_000, DstHosts: 10_000, Zipf: 1.1, Services: len(DefaultPorts),
		Interfaces: 48, Exporters: 4, Pool: 2048, Templates: "every 100 datagrams", TupleRepeat: 1}, truth.Workload)
}

// TestTemplatesEveryDatagrams checks the templates come first and then
// after every 100 data datagrams of each exporter, as routers count.
func TestTemplatesEveryDatagrams(t *testing.T) {
	for _, format := range []string{FormatV9, FormatIPFIX} {
		t.Run(format, func(t *testing.T) {
			r := newReceiver(t)
			truth, err := Run(context.Background(), Config{Format: format, Target: r.addr(), Rate: 500_000, Count: 40_000,
				Duration: time.Minute, Exporters: 2, Seed: 5})
			require.NoError(t, err)
			templateSet := uint16(0)
			if format == FormatIPFIX {
				templateSet = 2
			}
			hl := v9Header
			if format == FormatIPFIX {
				hl = ipfixHeader
			}
			type state struct{ data, templates, since int }
			st := map[netip.Addr]*state{}
			for _, p := range r.wait(t, truth.Sent.Datagrams) {
				s := st[p.src]
				if s == nil {
					s = &state{since: -1}
					st[p.src] = s
				}
				if binary.BigEndian.Uint16(p.payload[hl:]) == templateSet {
					require.True(t, s.since == -1 && s.data == 0 || s.since == 100,
						"from %s: templates after %d data datagrams", p.src, s.since)
					s.templates++
					s.since = 0
					continue
				}
				require.GreaterOrEqual(t, s.since, 0, "from %s: data before the templates", p.src)
				s.since++
				s.data++
			}
			require.Len(t, st, 2)
			var templates uint64
			for src, s := range st {
				require.Greater(t, s.data, 300, src.String())
				require.Equal(t, (s.data+99)/100, s.templates, "from %s", src)
				templates += uint64(s.templates)
			}
			require.Equal(t, truth.Sent.TemplateDatagrams, templates)
		})
	}
}

// TestPoolProfileReproduces checks the pool profile sends what flowgen sent
// before the backbone profile: testdata/pool_profile.json is the truth of
// these runs made by that code (commit 72b9266), top lists cut to 10.
func TestPoolProfileReproduces(t *testing.T) {
	b, err := os.ReadFile("testdata/pool_profile.json")
	require.NoError(t, err)
	type golden struct {
		Sent  Sent     `json:"sent"`
		Total Counters `json:"total"`
		Top   Top      `json:"top"`
	}
	var want map[string]golden
	require.NoError(t, json.Unmarshal(b, &want))
	for _, format := range []string{FormatV5, FormatV9, FormatIPFIX, FormatSFlow} {
		t.Run(format, func(t *testing.T) {
			tr, err := Run(context.Background(), Config{Format: format, Target: sink(t), Rate: 400_000, Count: 60_000, Duration: time.Minute,
				Exporters: 2, Seed: 5, Sampling: 10, Pool: 64, Profile: ProfilePool})
			require.NoError(t, err)
			got := golden{Sent: tr.Sent, Total: tr.Total, Top: *tr.Top}
			for _, l := range []*[]Entry{&got.Top.SrcIP, &got.Top.DstIP, &got.Top.IP, &got.Top.DstPort, &got.Top.SrcPort, &got.Top.Proto, &got.Top.Exporter} {
				*l = (*l)[:min(10, len(*l))]
			}
			w := want[format]
			// Templates are resent each second: how many depends on the run's speed.
			got.Sent.Datagrams -= got.Sent.TemplateDatagrams
			w.Sent.Datagrams -= w.Sent.TemplateDatagrams
			got.Sent.TemplateDatagrams, w.Sent.TemplateDatagrams = 0, 0
			require.Equal(t, w, got)
		})
	}
}

// TestEphTally checks the truth's count of rotated ports against sending
// one by one, across the wrap of the ephemeral range and with repeats.
func TestEphTally(t *testing.T) {
	f := func(port uint16, side uint8, n uint64, repeat uint64) {
		t.Helper()
		rec := flowRec{proto: protoUDP, eph: side, bytes: 100, packets: 2, srcPort: 53, dstPort: 53}
		if side == ephSrc {
			rec.srcPort = port
		} else {
			rec.dstPort = port
		}
		rot := rotation{repeat: repeat}
		var et ephTally
		et.add(&rec, n, rot, Counters{Bytes: 100, Packets: 2, Flows: 1})
		got := map[uint16]Counters{}
		et.each(func(srcSide bool, p uint16, proto uint8, c *Counters) {
			require.Equal(t, side == ephSrc, srcSide)
			require.Equal(t, uint8(protoUDP), proto)
			got[p] = *c
		})
		want := map[uint16]Counters{}
		for s := range n {
			v := EphemeralLo + (uint32(port-EphemeralLo)+rot.step(s))%ephRange
			c := want[uint16(v)]
			c.add(&Counters{Bytes: 100, Packets: 2, Flows: 1})
			want[uint16(v)] = c
		}
		require.Equal(t, want, got, "port %d side %d n %d repeat %d", port, side, n, repeat)
	}
	f(40_000, ephSrc, 1, 1)
	f(40_000, ephDst, 1000, 1)
	f(EphemeralHi-3, ephSrc, 10, 1)                  // wraps to EphemeralLo
	f(EphemeralHi-3, ephDst, 2*ephRange+5, 1)        // every port twice, some three times
	f(EphemeralLo+7, ephSrc, 3*(ephRange+2)+2, 3)    // whole cycle, then a partial repeat group
	f(EphemeralHi-1, ephDst, 11*ephRange+13, 11)     // sFlow-like repeats
	f(EphemeralLo, ephSrc, 0, 1)                     // nothing sent, nothing counted
	f(EphemeralHi-1, ephSrc, ephRange*5-1, 5)        // one send short of five cycles
	f(EphemeralLo+ephRange/2, ephDst, ephRange+1, 1) // the first port twice
}

// TestCountDistinct checks the distinct tuples of records that share their
// tuple but for the client port (a small key space, so they collide often)
// against listing every send.
func TestCountDistinct(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, repeat := range []uint64{1, 3} {
		for trial := range 100 {
			rot := rotation{repeat: repeat}
			var ents []tupleEnt
			brute := map[[3]uint64]bool{}
			for range 1 + r.IntN(12) {
				rec := flowRec{src: uint32(r.IntN(2)), dst: 5, inIf: 1, outIf: uint16(1 + r.IntN(2)), proto: protoTCP,
					eph: uint8(ephSrc + r.IntN(2)), srcPort: 443, dstPort: 443}
				p := uint16(EphemeralLo + r.IntN(ephRange))
				if r.IntN(3) == 0 {
					p = uint16(EphemeralHi - 1 - r.IntN(50)) // near the wrap
				}
				if rec.eph == ephSrc {
					rec.srcPort = p
				} else {
					rec.dstPort = p
				}
				from := uint64(r.IntN(3 * ephRange))
				to := from + 1 + uint64(r.IntN(200))
				if r.IntN(20) == 0 {
					to = from + uint64(ephRange)*repeat + uint64(r.IntN(100)) // a whole cycle
				}
				ents = append(ents, tupleEntry(&rec, from, to, rot))
				for s := from; s < to; s++ {
					v := EphemeralLo + (uint32(p-EphemeralLo)+rot.step(s))%ephRange
					sp, dp := uint64(rec.srcPort), uint64(rec.dstPort)
					if rec.eph == ephSrc {
						sp = uint64(v)
					} else {
						dp = uint64(v)
					}
					brute[[3]uint64{uint64(rec.src)<<8 | uint64(rec.outIf), sp, dp}] = true
				}
			}
			require.Equal(t, uint64(len(brute)), countDistinct(ents), "repeat %d trial %d", repeat, trial)
		}
	}
}

// BenchmarkRotate measures the per-send cost of rotating a v9 datagram's
// client ports, per record.
func BenchmarkRotate(b *testing.B) {
	for _, format := range []string{FormatV9, FormatSFlow} {
		b.Run(format, func(b *testing.B) {
			cfg := Config{Format: format, Count: 1, Seed: 1}
			require.NoError(b, cfg.defaults())
			services := make([]service, len(cfg.Ports))
			for i, p := range cfg.Ports {
				services[i], _ = parseService(p)
			}
			x := &exporter{codec: codecFor(format), rot: cfg.rotation(),
				src: source{addr: netip.MustParseAddr("127.0.0.2"), domain: 1, sampling: 1, m: newModel(&cfg, services)}}
			cfg.Pool = 256
			x.build(&cfg, 0)
			recs := 0
			for _, d := range x.pool {
				recs += len(d.recs)
			}
			s := uint64(0)
			for b.Loop() {
				s++
				for _, d := range x.pool {
					rotate(d, x.rot.step(s))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(recs), "ns/record")
		})
	}
}
