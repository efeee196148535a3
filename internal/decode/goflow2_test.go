package decode

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
	"github.com/netsampler/goflow2/v2/decoders/sflow"
	protoproducer "github.com/netsampler/goflow2/v2/producer/proto"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// Differential test against goflow2 v2.2.6, the reference decoders of the
// design: every datagram of the real exporters' captures (softflowd and
// pmacct, see testdata/pcaps/make.sh) is decoded by goflow2's
// decoders/netflowlegacy, decoders/netflow and decoders/sflow and by tmsd's
// Decoder, and both must give the same flows, datagram by datagram.
//
// What goflow2's decoders leave to their caller is done here, the way
// goflow2's own producer does it where it has an opinion:
//   - v5: bytes and packets times the header's sampling interval (low 14
//     bits, 0 = unsampled); TOS is the record's tos byte.
//   - v9/IPFIX: fields 8/12 or 27/28 (addresses), 7/11, 4, 6, 10/14, 5 (TOS;
//     else IPFIX 195, the DSCP, shifted into the ToS byte), bytes
//     1 else 85, packets 2 else 86; a record with no address is not a flow.
//     Options data records are not flows either, but
//     their sampling rate (305/306 interval and space, else 34, else 50) is
//     remembered per observation domain and applied to the later data
//     records. softflowd's v9 and IPFIX captures carry such a rate, 1.
//   - sFlow: the sampled header is parsed by goflow2's producer
//     (protoproducer.ParseSampledHeader); bytes = frame length × rate,
//     packets = rate; TOS is the producer's IpTos (IPv4 ToS, IPv6 traffic
//     class), or a sampled IPv4/IPv6 record's tos/priority. Interfaces are
//     read as sflow_version_5.txt says: the top 2 bits of a compact
//     interface are its format, and only format 0 with a value other than
//     0x3fffffff is an ifIndex.

// gfFlow is what both decoders are compared on.
type gfFlow struct {
	Src, Dst         string
	SrcPort, DstPort uint16
	Proto            uint8
	TCPFlags         uint8
	TOS              uint8
	Bytes, Packets   uint64
	InIf, OutIf      uint32
	SamplingRate     uint32
}

func compareGfFlow(a, b gfFlow) int {
	return cmp.Or(
		cmp.Compare(a.Src, b.Src), cmp.Compare(a.Dst, b.Dst),
		cmp.Compare(a.SrcPort, b.SrcPort), cmp.Compare(a.DstPort, b.DstPort),
		cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.TCPFlags, b.TCPFlags),
		cmp.Compare(a.TOS, b.TOS),
		cmp.Compare(a.Bytes, b.Bytes), cmp.Compare(a.Packets, b.Packets),
		cmp.Compare(a.InIf, b.InIf), cmp.Compare(a.OutIf, b.OutIf),
		cmp.Compare(a.SamplingRate, b.SamplingRate),
	)
}

func gfFlowOf(r *flow.Record) gfFlow {
	return gfFlow{
		Src: r.SrcAddr.Netip().String(), Dst: r.DstAddr.Netip().String(),
		SrcPort: r.SrcPort, DstPort: r.DstPort, Proto: r.Proto, TCPFlags: r.TCPFlags, TOS: r.TOS,
		Bytes: r.Bytes, Packets: r.Packets, InIf: r.InIf, OutIf: r.OutIf,
		SamplingRate: r.SamplingRate,
	}
}

func gfAddr(b []byte) string {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.Addr{}.String()
	}
	return a.Unmap().String()
}

// goflow2Reference holds goflow2's state across the datagrams of a capture.
type goflow2Reference struct {
	templates map[gfExporterKey]netflow.NetFlowTemplateSystem
	rates     map[gfDomainKey]uint32 // v9/IPFIX sampling rate from options data
}

type gfExporterKey struct {
	addr    netip.Addr
	version uint16
}

type gfDomainKey struct {
	gfExporterKey
	domain uint32
}

func newGoflow2Reference() *goflow2Reference {
	return &goflow2Reference{
		templates: make(map[gfExporterKey]netflow.NetFlowTemplateSystem),
		rates:     make(map[gfDomainKey]uint32),
	}
}

// decode decodes one datagram with goflow2 and returns its flows.
func (g *goflow2Reference) decode(src netip.Addr, payload []byte) ([]gfFlow, error) {
	if len(payload) < 4 {
		return nil, fmt.Errorf("%d bytes", len(payload))
	}
	if binary.BigEndian.Uint32(payload) == 5 {
		return g.sflow(payload)
	}
	switch version := binary.BigEndian.Uint16(payload); version {
	case 5:
		return g.v5(payload)
	case 9, 10:
		return g.netflow(src, version, payload)
	default:
		return nil, fmt.Errorf("version %d", version)
	}
}

func (g *goflow2Reference) v5(payload []byte) ([]gfFlow, error) {
	var p netflowlegacy.PacketNetFlowV5
	if err := netflowlegacy.DecodeMessageVersion(bytes.NewBuffer(payload), &p); err != nil {
		return nil, err
	}
	// goflow2 zero-fills the records a truncated datagram lacks: keep the real ones.
	if available := (len(payload) - v5HeaderLength) / v5RecordLength; available < len(p.Records) {
		return nil, fmt.Errorf("v5: %d records announced, %d carried", len(p.Records), available)
	}
	rate := uint32(p.SamplingInterval & 0x3fff)
	if rate == 0 {
		rate = 1
	}
	out := make([]gfFlow, 0, len(p.Records))
	for _, r := range p.Records {
		out = append(out, gfFlow{
			Src:     netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, uint32(r.SrcAddr)))).String(),
			Dst:     netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, uint32(r.DstAddr)))).String(),
			SrcPort: r.SrcPort, DstPort: r.DstPort, Proto: r.Proto, TCPFlags: r.TCPFlags, TOS: r.Tos,
			Bytes: uint64(r.DOctets) * uint64(rate), Packets: uint64(r.DPkts) * uint64(rate),
			InIf: uint32(r.Input), OutIf: uint32(r.Output),
			SamplingRate: rate,
		})
	}
	return out, nil
}

func gfUint(v any) uint64 {
	b, _ := v.([]byte)
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

func (g *goflow2Reference) netflow(src netip.Addr, version uint16, payload []byte) ([]gfFlow, error) {
	key := gfExporterKey{src, version}
	ts, ok := g.templates[key]
	if !ok {
		ts = netflow.CreateTemplateSystem()
		g.templates[key] = ts
	}
	var v9 netflow.NFv9Packet
	var ipfix netflow.IPFIXPacket
	err := netflow.DecodeMessageVersion(bytes.NewBuffer(payload), ts, &v9, &ipfix)
	domain, sets := v9.SourceId, v9.FlowSets
	if version == 10 {
		domain, sets = ipfix.ObservationDomainId, ipfix.FlowSets
	}
	dk := gfDomainKey{key, domain}
	var out []gfFlow
	for _, set := range sets {
		switch set := set.(type) {
		case netflow.OptionsDataFlowSet:
			for _, r := range set.Records {
				var interval, space, v9Interval, random uint64
				for _, f := range r.OptionsValues {
					switch f.Type {
					case 305:
						interval = gfUint(f.Value)
					case 306:
						space = gfUint(f.Value)
					case 34:
						v9Interval = gfUint(f.Value)
					case 50:
						random = gfUint(f.Value)
					}
				}
				switch {
				case interval != 0:
					g.rates[dk] = uint32((interval + space) / interval)
				case v9Interval != 0:
					g.rates[dk] = uint32(v9Interval)
				case random != 0:
					g.rates[dk] = uint32(random)
				}
			}
		case netflow.DataFlowSet:
			rate := max(g.rates[dk], 1)
			for _, r := range set.Records {
				var f gfFlow
				var bytes1, bytes85, pkts2, pkts86 uint64
				var has1, has2, hasAddr, has5 bool
				var dscp uint8
				for _, v := range r.Values {
					if v.PenProvided {
						continue
					}
					switch v.Type {
					case 1:
						bytes1, has1 = gfUint(v.Value), true
					case 85:
						bytes85 = gfUint(v.Value)
					case 2:
						pkts2, has2 = gfUint(v.Value), true
					case 86:
						pkts86 = gfUint(v.Value)
					case 8, 27:
						f.Src, hasAddr = gfAddr(v.Value.([]byte)), true
					case 12, 28:
						f.Dst, hasAddr = gfAddr(v.Value.([]byte)), true
					case 7:
						f.SrcPort = uint16(gfUint(v.Value))
					case 11:
						f.DstPort = uint16(gfUint(v.Value))
					case 4:
						f.Proto = uint8(gfUint(v.Value))
					case 6:
						f.TCPFlags = uint8(gfUint(v.Value))
					case 5: // goflow2's producer: srcTOS is IpTos
						f.TOS, has5 = uint8(gfUint(v.Value)), true
					case 195: // ipDiffServCodePoint, which goflow2's producer ignores: the ToS's DSCP bits
						dscp = uint8(gfUint(v.Value))
					case 10:
						f.InIf = uint32(gfUint(v.Value))
					case 14:
						f.OutIf = uint32(gfUint(v.Value))
					}
				}
				if !hasAddr {
					continue // not a flow
				}
				if !has5 {
					f.TOS = dscp << 2
				}
				if !has1 {
					bytes1 = bytes85
				}
				if !has2 {
					pkts2 = pkts86
				}
				f.Bytes, f.Packets, f.SamplingRate = bytes1*uint64(rate), pkts2*uint64(rate), rate
				if f.Src == "" {
					f.Src = netip.IPv6Unspecified().String()
				}
				if f.Dst == "" {
					f.Dst = netip.IPv6Unspecified().String()
				}
				out = append(out, f)
			}
		}
	}
	return out, err
}

// sflowIf reads an sFlow interface (format, value) as an ifIndex, 0 if it is none.
func sflowIf(format, value uint32) uint32 {
	if format != 0 || value == 0x3fffffff {
		return 0
	}
	return value
}

func (g *goflow2Reference) sflow(payload []byte) ([]gfFlow, error) {
	var p sflow.Packet
	if err := sflow.DecodeMessageVersion(bytes.NewBuffer(payload), &p); err != nil {
		return nil, err
	}
	var out []gfFlow
	for _, s := range p.Samples {
		var rate, inIf, outIf uint32
		var records []sflow.FlowRecord
		switch s := s.(type) {
		case sflow.FlowSample:
			rate, records = s.SamplingRate, s.Records
			inIf, outIf = sflowIf(s.Input>>30, s.Input&0x3fffffff), sflowIf(s.Output>>30, s.Output&0x3fffffff)
		case sflow.ExpandedFlowSample:
			rate, records = s.SamplingRate, s.Records
			inIf, outIf = sflowIf(s.InputIfFormat, s.InputIfValue), sflowIf(s.OutputIfFormat, s.OutputIfValue)
		default:
			continue
		}
		rate = max(rate, 1)
		// The first raw header holding an IP packet, else a sampled IPv4/IPv6 record.
		var f gfFlow
		var found bool
		for _, r := range records {
			h, ok := r.Data.(sflow.SampledHeader)
			if !ok {
				continue
			}
			var m protoproducer.ProtoProducerMessage
			if err := protoproducer.ParseSampledHeader(&m, &h); err != nil {
				return nil, err
			}
			if len(m.SrcAddr) == 0 {
				continue
			}
			f = gfFlow{
				Src: gfAddr(m.SrcAddr), Dst: gfAddr(m.DstAddr),
				SrcPort: uint16(m.SrcPort), DstPort: uint16(m.DstPort),
				Proto: uint8(m.Proto), TCPFlags: uint8(m.TcpFlags), TOS: uint8(m.IpTos),
				Bytes: uint64(h.FrameLength),
			}
			found = true
			break
		}
		for _, r := range records {
			if found {
				break
			}
			var b sflow.SampledIPBase
			var tos uint32
			switch d := r.Data.(type) {
			case sflow.SampledIPv4:
				b, tos = d.SampledIPBase, d.Tos
			case sflow.SampledIPv6:
				b, tos = d.SampledIPBase, d.Priority
			default:
				continue
			}
			f = gfFlow{
				Src: gfAddr(b.SrcIP), Dst: gfAddr(b.DstIP),
				SrcPort: uint16(b.SrcPort), DstPort: uint16(b.DstPort),
				Proto: uint8(b.Protocol), TCPFlags: uint8(b.TcpFlags), TOS: uint8(tos),
				Bytes: uint64(b.Length),
			}
			found = true
		}
		if !found {
			continue
		}
		f.Bytes *= uint64(rate)
		f.Packets, f.SamplingRate = uint64(rate), rate
		f.InIf, f.OutIf = inIf, outIf
		out = append(out, f)
	}
	return out, nil
}

func TestGoflow2Differential(t *testing.T) {
	// Every file there is an export (the raw packet trace is in testdata/traces).
	captures, err := filepath.Glob(filepath.Join("..", "..", "testdata", "pcaps", "*.pcap"))
	require.NoError(t, err)
	if len(captures) == 0 {
		t.Skip("no captures in testdata/pcaps")
	}
	for _, path := range captures {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			d := newTestDecoder(t, DefaultConfiguration())
			ref := newGoflow2Reference()
			var records []flow.Record
			var totalGoflow2, totalTmsd, datagrams int
			_, err := pcapsrc.Read(path, func(dg pcapsrc.Datagram) error {
				payload := bytes.Clone(dg.Payload)
				src := dg.Src.Addr().Unmap()
				want, gErr := ref.decode(src, payload)
				var tErr error
				records, tErr = d.Decode(src, payload, dg.Time, records[:0])
				got := make([]gfFlow, len(records))
				for i := range records {
					got[i] = gfFlowOf(&records[i])
				}
				slices.SortFunc(want, compareGfFlow)
				slices.SortFunc(got, compareGfFlow)
				if len(want) == 0 {
					want = nil
				}
				if len(got) == 0 {
					got = nil
				}
				// Clean captures: neither decoder may complain about any datagram.
				require.NoErrorf(t, gErr, "datagram %d from %s: goflow2", datagrams, dg.Src)
				require.NoErrorf(t, tErr, "datagram %d from %s: tmsd", datagrams, dg.Src)
				require.Equalf(t, want, got, "datagram %d from %s (goflow2 expected, tmsd actual)", datagrams, dg.Src)
				totalGoflow2 += len(want)
				totalTmsd += len(got)
				datagrams++
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, totalGoflow2, totalTmsd, "flows decoded")
			require.Positive(t, totalTmsd, "no flows decoded")
			t.Logf("%d datagrams, %d flows, identical", datagrams, totalTmsd)
		})
	}
}
