package kafka

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tmsd/tmsd/internal/flow"
)

// The wire format is goflow2's: a flowpb.FlowMessage
// (github.com/netsampler/goflow2/v2/pb), prefixed by its length as a varint
// (protodelim, what goflow2's `-format=bin` writes), one per Kafka record. So
// an aggregator consumes a goflow2 deployment's topic and goflow2's consumers
// read tmsd's. The encoder and decoder are written against protowire, not
// generated code, so that neither allocates per flow; codec_test.go checks
// both against goflow2's generated type.

// Field numbers of flowpb.FlowMessage that tmsd writes and reads.
const (
	fType           = 1
	fSamplingRate   = 3
	fSrcAddr        = 6
	fDstAddr        = 7
	fBytes          = 9
	fPackets        = 10
	fSamplerAddress = 11
	fSrcAS          = 14
	fDstAS          = 15
	fInIf           = 18
	fOutIf          = 19
	fProto          = 20
	fSrcPort        = 21
	fDstPort        = 22
	fIPTos          = 23
	fTCPFlags       = 26
	fEtype          = 30
	fObsDomain      = 70
	fTimeReceivedNs = 110
	fTimeStartNs    = 111
	fTimeEndNs      = 112
)

// goflow2's FlowMessage.FlowType values.
const (
	typeSFlow5   = 1
	typeNetFlow5 = 2
	typeNetFlow9 = 3
	typeIPFIX    = 4
)

// ErrMalformed is a message that is not a length-delimited FlowMessage.
var ErrMalformed = errors.New("malformed FlowMessage")

// maxMessage bounds the body tmsd writes (three 16-byte addresses and twenty
// integers are under 300 bytes), so the length prefix takes at most 2 bytes.
const maxMessage = 1<<14 - 1

func flowType(p flow.Protocol) uint64 {
	switch p {
	case flow.ProtoSFlowV5:
		return typeSFlow5
	case flow.ProtoNetFlowV5:
		return typeNetFlow5
	case flow.ProtoNetFlowV9:
		return typeNetFlow9
	case flow.ProtoIPFIX:
		return typeIPFIX
	}
	return 0
}

func exportProtocol(t uint64) flow.Protocol {
	switch t {
	case typeSFlow5:
		return flow.ProtoSFlowV5
	case typeNetFlow5:
		return flow.ProtoNetFlowV5
	case typeNetFlow9:
		return flow.ProtoNetFlowV9
	case typeIPFIX:
		return flow.ProtoIPFIX
	}
	return flow.ProtoUnknown
}

// addrBytes is an address as goflow2 writes it: 4 bytes for IPv4, 16 for IPv6.
func addrBytes(a *flow.Addr) []byte {
	if a.Is4() {
		return a[12:16]
	}
	return a[:]
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b // proto3: a zero scalar is not written
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// AppendFlow appends r as a length-delimited FlowMessage. tmsd's records
// carry bytes and packets already multiplied by the sampling rate; goflow2's
// carry them as exported with the rate beside them, and its consumers
// multiply. So they are divided back, and where the division is not exact
// (a record tmsd scaled otherwise) they go as they are with a rate of 1: the
// totals stay exact either way.
func AppendFlow(b []byte, r *flow.Record) []byte {
	start := len(b)
	b = append(b, 0, 0) // the length prefix, at most 2 bytes
	body := len(b)
	rate := uint64(r.SamplingRate)
	bytes, packets := r.Bytes, r.Packets
	switch {
	case rate > 1 && bytes%rate == 0 && packets%rate == 0:
		bytes, packets = bytes/rate, packets/rate
	case rate > 1:
		rate = 1
	}
	b = appendVarintField(b, fType, flowType(r.Export))
	b = appendVarintField(b, fSamplingRate, rate)
	b = appendBytesField(b, fSrcAddr, addrBytes(&r.SrcAddr))
	b = appendBytesField(b, fDstAddr, addrBytes(&r.DstAddr))
	b = appendVarintField(b, fBytes, bytes)
	b = appendVarintField(b, fPackets, packets)
	b = appendBytesField(b, fSamplerAddress, addrBytes(&r.Exporter))
	b = appendVarintField(b, fSrcAS, uint64(r.SrcAS))
	b = appendVarintField(b, fDstAS, uint64(r.DstAS))
	b = appendVarintField(b, fInIf, uint64(r.InIf))
	b = appendVarintField(b, fOutIf, uint64(r.OutIf))
	b = appendVarintField(b, fProto, uint64(r.Proto))
	b = appendVarintField(b, fSrcPort, uint64(r.SrcPort))
	b = appendVarintField(b, fDstPort, uint64(r.DstPort))
	b = appendVarintField(b, fIPTos, uint64(r.TOS))
	b = appendVarintField(b, fTCPFlags, uint64(r.TCPFlags))
	etype := uint64(0x86dd)
	if r.SrcAddr.Is4() || (r.SrcAddr.IsZero() && r.DstAddr.Is4()) {
		etype = 0x0800
	}
	b = appendVarintField(b, fEtype, etype)
	b = appendVarintField(b, fObsDomain, uint64(r.ObsDomain))
	b = appendVarintField(b, fTimeReceivedNs, msToNs(r.Received))
	b = appendVarintField(b, fTimeStartNs, msToNs(r.Start))
	b = appendVarintField(b, fTimeEndNs, msToNs(r.End))
	n := len(b) - body
	if n < 1<<7 {
		b[start] = byte(n)
		copy(b[start+1:], b[body:])
		return b[:len(b)-1]
	}
	b[start], b[start+1] = byte(n)|0x80, byte(n>>7)
	return b
}

func msToNs(ms int64) uint64 {
	if ms <= 0 {
		return 0
	}
	return uint64(ms) * 1e6
}

// DecodeFlows appends the flows of a Kafka record's value: one or more
// length-delimited FlowMessages (goflow2 writes one). Fields tmsd does not
// keep are skipped; bytes and packets are multiplied by the sampling rate (0,
// as goflow2 writes it when the export had none, counts as 1). On a malformed
// message it returns the flows before it and an error wrapping ErrMalformed.
func DecodeFlows(v []byte, out []flow.Record) ([]flow.Record, error) {
	for len(v) > 0 {
		n, l := protowire.ConsumeVarint(v)
		if l < 0 || n > uint64(len(v)-l) {
			return out, fmt.Errorf("%w: bad length prefix", ErrMalformed)
		}
		out = append(out, flow.Record{})
		if err := decodeMessage(v[l:l+int(n)], &out[len(out)-1]); err != nil {
			return out[:len(out)-1], err
		}
		v = v[l+int(n):]
	}
	return out, nil
}

func decodeMessage(m []byte, r *flow.Record) error {
	var rate, bytes, packets uint64
	for len(m) > 0 {
		num, typ, l := protowire.ConsumeTag(m)
		if l < 0 {
			return fmt.Errorf("%w: bad tag", ErrMalformed)
		}
		m = m[l:]
		switch typ {
		case protowire.VarintType:
			v, l := protowire.ConsumeVarint(m)
			if l < 0 {
				return fmt.Errorf("%w: field %d: bad varint", ErrMalformed, num)
			}
			m = m[l:]
			switch num {
			case fType:
				r.Export = exportProtocol(v)
			case fSamplingRate:
				rate = v
			case fBytes:
				bytes = v
			case fPackets:
				packets = v
			case fSrcAS:
				r.SrcAS = uint32(v)
			case fDstAS:
				r.DstAS = uint32(v)
			case fInIf:
				r.InIf = uint32(v)
			case fOutIf:
				r.OutIf = uint32(v)
			case fProto:
				r.Proto = uint8(v)
			case fSrcPort:
				r.SrcPort = uint16(v)
			case fDstPort:
				r.DstPort = uint16(v)
			case fIPTos:
				r.TOS = uint8(v)
			case fTCPFlags:
				r.TCPFlags = uint8(v)
			case fObsDomain:
				r.ObsDomain = uint32(v)
			case fTimeReceivedNs:
				r.Received = int64(v / 1e6)
			case fTimeStartNs:
				r.Start = int64(v / 1e6)
			case fTimeEndNs:
				r.End = int64(v / 1e6)
			}
		case protowire.BytesType:
			v, l := protowire.ConsumeBytes(m)
			if l < 0 {
				return fmt.Errorf("%w: field %d: bad length", ErrMalformed, num)
			}
			m = m[l:]
			var dst *flow.Addr
			switch num {
			case fSrcAddr:
				dst = &r.SrcAddr
			case fDstAddr:
				dst = &r.DstAddr
			case fSamplerAddress:
				dst = &r.Exporter
			default:
				continue
			}
			a, ok := flow.AddrFromSlice(v)
			if !ok {
				return fmt.Errorf("%w: field %d: a %d-byte address", ErrMalformed, num, len(v))
			}
			*dst = a
		default:
			l := protowire.ConsumeFieldValue(num, typ, m)
			if l < 0 {
				return fmt.Errorf("%w: field %d: bad value", ErrMalformed, num)
			}
			m = m[l:]
		}
	}
	if rate == 0 {
		rate = 1
	}
	r.SamplingRate = uint32(rate)
	r.Bytes, r.Packets = bytes*rate, packets*rate
	return nil
}
