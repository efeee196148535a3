package decode

import (
	"encoding/binary"

	"github.com/tmsd/tmsd/internal/flow"
)

// sFlow v5 (sflow.org/sflow_version_5.txt) is parsed by hand rather than with
// goflow2's decoders/sflow: that one allocates per sample and record, skips
// truncated samples without an error, and sizes the records of an expanded
// flow sample from an unchecked 32-bit count.

// sFlow sample and record formats (enterprise 0).
const (
	sflowFlowSample            = 1
	sflowCounterSample         = 2
	sflowExpandedFlowSample    = 3
	sflowExpandedCounterSample = 4

	sflowRawHeader   = 1
	sflowSampledIPv4 = 3
	sflowSampledIPv6 = 4
	sflowExtGateway  = 1003

	sflowGenericInterfaceCounters = 1
	sflowGenericInterfaceLength   = 88

	// Header protocols of a raw packet header record.
	sflowHeaderEthernet = 1
	sflowHeaderIPv4     = 11
	sflowHeaderIPv6     = 12

	// sflowIfUnknown is the compact interface value for "unknown" (or internal).
	sflowIfUnknown = 0x3fffffff
)

// xdr reads big-endian 32-bit words from an sFlow structure. A short read
// empties it and sets bad, so a parser can read a whole structure and check once.
type xdr struct {
	b   []byte
	bad bool
}

func (x *xdr) u32() uint32 {
	if len(x.b) < 4 {
		x.b, x.bad = nil, true
		return 0
	}
	v := binary.BigEndian.Uint32(x.b)
	x.b = x.b[4:]
	return v
}

func (x *xdr) u64() uint64 { return uint64(x.u32())<<32 | uint64(x.u32()) }

// opaque returns the next n bytes (XDR pads them to 4).
func (x *xdr) opaque(n uint32) []byte {
	padded := (uint64(n) + 3) &^ 3
	if uint64(len(x.b)) < padded {
		x.b, x.bad = nil, true
		return nil
	}
	v := x.b[:n]
	x.b = x.b[padded:]
	return v
}

func (dg *datagram) decodeSFlow(p []byte) {
	x := xdr{b: p[4:]}
	switch x.u32() { // agent address type
	case 1:
		x.opaque(4)
	case 2:
		x.opaque(16)
	default:
		if !x.bad {
			dg.malformed("sFlow agent address type unknown")
			return
		}
	}
	subAgent := x.u32()
	x.u32() // sequence number
	x.u32() // uptime
	samples := x.u32()
	if x.bad {
		dg.malformed("sFlow header truncated")
		return
	}
	for i := range samples {
		if len(x.b) == 0 {
			dg.malformed("sFlow announces %d samples, carries %d", samples, i)
			return
		}
		format := x.u32()
		data := x.opaque(x.u32())
		if x.bad {
			dg.malformed("sFlow sample %d truncated", i)
			return
		}
		if format>>12 != 0 {
			continue // enterprise-specific
		}
		if !dg.record() {
			return
		}
		sample := xdr{b: data}
		switch format {
		case sflowFlowSample, sflowExpandedFlowSample:
			dg.sflowFlowSample(&sample, format == sflowExpandedFlowSample, subAgent)
		case sflowCounterSample, sflowExpandedCounterSample:
			dg.sflowCounterSample(&sample, format == sflowExpandedCounterSample)
		}
	}
}

// sflowInterface returns an ifIndex from a (format, value) interface, 0 when
// it is not one: unknown, packet discarded (format 1) or sent to several
// interfaces (format 2).
func sflowInterface(format, value uint32) uint32 {
	if format != 0 || value == sflowIfUnknown {
		return 0
	}
	return value
}

// sflowFlowSample turns a flow sample into one record, from its raw packet
// header record, else from its sampled IPv4/IPv6 record.
func (dg *datagram) sflowFlowSample(x *xdr, expanded bool, subAgent uint32) {
	x.u32() // sequence number
	if expanded {
		x.u32() // source ID type
	}
	x.u32() // source ID (index)
	samplingRate := x.u32()
	x.u32() // sample pool
	x.u32() // drops
	var inIf, outIf uint32
	if expanded {
		inIf = sflowInterface(x.u32(), x.u32())
		outIf = sflowInterface(x.u32(), x.u32())
	} else {
		in, out := x.u32(), x.u32()
		inIf = sflowInterface(in>>30, in&0x3fffffff)
		outIf = sflowInterface(out>>30, out&0x3fffffff)
	}
	records := x.u32()

	var fromHeader, fromIP flow.Record
	var haveHeader, haveIP bool
	var srcAS, dstAS uint32
	for range records {
		format := x.u32()
		r := xdr{b: x.opaque(x.u32())}
		if x.bad {
			dg.malformed("sFlow flow sample truncated")
			return
		}
		switch format {
		case sflowRawHeader:
			protocol := r.u32()
			frameLength := r.u32()
			r.u32() // bytes stripped
			header := r.opaque(r.u32())
			if r.bad {
				dg.malformed("sFlow raw header record truncated")
				return
			}
			if !haveHeader && parseHeader(protocol, header, &fromHeader) {
				fromHeader.Bytes, haveHeader = uint64(frameLength), true
			}
		case sflowExtGateway:
			srcAS, dstAS = r.gatewayAS()
			if r.bad {
				dg.malformed("sFlow extended gateway record truncated")
				return
			}
		case sflowSampledIPv4, sflowSampledIPv6:
			if !haveIP && r.sampledIP(format == sflowSampledIPv6, &fromIP) {
				haveIP = true
			} else if r.bad {
				dg.malformed("sFlow sampled IP record truncated")
				return
			}
		}
	}
	if x.bad {
		dg.malformed("sFlow flow sample truncated")
		return
	}
	rec := &fromHeader
	switch {
	case haveHeader:
	case haveIP:
		rec = &fromIP
	default:
		return // no IP packet in this sample (ARP, L2 control...)
	}
	rate := uint64(dg.sampling(samplingRate, sourceSample))
	rec.Bytes *= rate
	rec.Packets = rate
	rec.InIf, rec.OutIf = inIf, outIf
	rec.SrcAS, rec.DstAS = srcAS, dstAS
	rec.Exporter = dg.exporter
	rec.Received = dg.received
	rec.SamplingRate = uint32(rate)
	rec.ObsDomain = subAgent
	rec.Export = flow.ProtoSFlowV5
	dg.out = append(dg.out, *rec)
}

// gatewayAS reads an extended gateway record (sFlow v5, format 1003): the
// source AS, and the destination AS: the last of the AS path, the router's
// own AS when the path is empty (goflow2's producer does the same).
func (x *xdr) gatewayAS() (src, dst uint32) {
	switch x.u32() { // next hop address type
	case 1:
		x.opaque(4)
	case 2:
		x.opaque(16)
	default:
		x.bad = true
		return 0, 0
	}
	own := x.u32()
	src = x.u32()
	x.u32() // source peer AS
	dst = own
	segments := x.u32()
	for i := uint32(0); i < segments && !x.bad; i++ {
		x.u32() // segment type: AS_SET or AS_SEQUENCE
		n := x.u32()
		if n > uint32(len(x.b)/4) {
			x.bad = true
			return 0, 0
		}
		for j := uint32(0); j < n; j++ {
			dst = x.u32()
		}
	}
	return src, dst // as goflow2's producer: a 0 source is left to the database
}

// sampledIP parses a sampled IPv4 or IPv6 record into rec (Bytes = the IP length).
func (x *xdr) sampledIP(v6 bool, rec *flow.Record) bool {
	length := x.u32()
	proto := x.u32()
	n := uint32(4)
	if v6 {
		n = 16
	}
	src, dst := x.opaque(n), x.opaque(n)
	srcPort, dstPort, flags := x.u32(), x.u32(), x.u32()
	tos := x.u32() // IPv4 ToS, IPv6 priority (the traffic class)
	if x.bad {
		return false
	}
	rec.SrcAddr, _ = flow.AddrFromSlice(src)
	rec.DstAddr, _ = flow.AddrFromSlice(dst)
	rec.Proto = uint8(proto)
	rec.SrcPort, rec.DstPort = uint16(srcPort), uint16(dstPort)
	rec.TCPFlags = uint8(flags)
	rec.TOS = uint8(tos)
	rec.Bytes = uint64(length)
	return true
}

// sflowCounterSample keeps the generic interface counters of a counter sample.
func (dg *datagram) sflowCounterSample(x *xdr, expanded bool) {
	x.u32() // sequence number
	if expanded {
		x.u32() // source ID type
	}
	x.u32() // source ID
	records := x.u32()
	for range records {
		format := x.u32()
		data := x.opaque(x.u32())
		if x.bad {
			dg.malformed("sFlow counter sample truncated")
			return
		}
		if format != sflowGenericInterfaceCounters {
			continue
		}
		if len(data) < sflowGenericInterfaceLength {
			dg.malformed("sFlow generic interface counters of %d bytes", len(data))
			return
		}
		r := xdr{b: data}
		c := InterfaceCounters{IfIndex: r.u32()}
		if c.IfIndex == sflowIfUnknown {
			// pmacct's sfprobe reports its counters under the "unknown"
			// interface of the flow samples (with a made-up 100 Mbps ifSpeed):
			// 0, as the flow samples' in_if and out_if, not interface 1073741823.
			c.IfIndex = 0
		}
		r.u32() // ifType
		c.Speed = r.u64()
		c.Direction = r.u32()
		c.Status = r.u32()
		c.InOctets = r.u64()
		c.InPackets = uint64(r.u32()) + uint64(r.u32()) + uint64(r.u32())
		c.InDiscards = r.u32()
		c.InErrors = r.u32()
		r.u32() // unknown protocols
		c.OutOctets = r.u64()
		c.OutPackets = uint64(r.u32()) + uint64(r.u32()) + uint64(r.u32())
		c.OutDiscards = r.u32()
		c.OutErrors = r.u32()
		c.Updated = dg.receivedAt
		dg.e.setInterface(c)
	}
}
