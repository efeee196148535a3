// Package flow owns the collector's flow record: the one value type that every
// stage (decoders, the ring, Kafka later, aggregators) passes along. It is a
// fixed-size value with no pointers, so batches of it copy cheaply and never touch the GC.
package flow

import (
	"net/netip"
)

// Addr is an IP address in 16-byte form; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d).
type Addr [16]byte

// AddrFrom converts a netip.Addr, unmapping nothing: IPv4 becomes IPv4-mapped.
func AddrFrom(a netip.Addr) Addr { return Addr(a.As16()) }

// AddrFromV4 builds an Addr from four IPv4 bytes.
func AddrFromV4(b []byte) Addr {
	var a Addr
	a[10], a[11] = 0xff, 0xff
	copy(a[12:], b[:4])
	return a
}

// AddrFromSlice accepts 4- or 16-byte slices; anything else gives the zero Addr and false.
func AddrFromSlice(b []byte) (Addr, bool) {
	switch len(b) {
	case 4:
		return AddrFromV4(b), true
	case 16:
		var a Addr
		copy(a[:], b)
		return a, true
	}
	return Addr{}, false
}

// Netip returns the address as netip.Addr, IPv4-mapped addresses unmapped to IPv4.
func (a Addr) Netip() netip.Addr { return netip.AddrFrom16(a).Unmap() }

// Is4 reports whether the address is IPv4 (IPv4-mapped).
func (a Addr) Is4() bool { return netip.AddrFrom16(a).Is4In6() }

// IsZero reports whether the address is all zeros (unset).
func (a Addr) IsZero() bool { return a == Addr{} }

func (a Addr) String() string { return a.Netip().String() }

// Protocol identifies the export protocol and version a record came from.
type Protocol uint8

// Export protocols.
const (
	ProtoUnknown Protocol = iota
	ProtoNetFlowV5
	ProtoNetFlowV9
	ProtoIPFIX
	ProtoSFlowV5
)

func (p Protocol) String() string {
	switch p {
	case ProtoNetFlowV5:
		return "netflow-v5"
	case ProtoNetFlowV9:
		return "netflow-v9"
	case ProtoIPFIX:
		return "ipfix"
	case ProtoSFlowV5:
		return "sflow-v5"
	}
	return "unknown"
}

// Record is one flow as the collector keeps it. Bytes and Packets are already
// multiplied by the sampling rate. Times are unix milliseconds; Start and End are
// the exporter's (0 when the export did not carry them), Received is when the
// datagram reached tmsd (or its capture timestamp on import).
type Record struct {
	Exporter     Addr
	SrcAddr      Addr
	DstAddr      Addr
	Bytes        uint64
	Packets      uint64
	Start        int64
	End          int64
	Received     int64
	InIf         uint32
	OutIf        uint32
	SamplingRate uint32 // the rate applied to Bytes/Packets; 1 when unsampled
	ObsDomain    uint32 // v9 source ID, IPFIX observation domain, sFlow sub-agent ID
	SrcPort      uint16
	DstPort      uint16
	Proto        uint8 // IP protocol number
	TCPFlags     uint8
	Export       Protocol
	TOS          uint8 // IP ToS / traffic class byte as exported (DSCP = TOS>>2); 0 when the export did not carry it
	// Enrichment, at ingest: the application (an id of the apps package; 0:
	// not classified yet), the ends' AS numbers and countries (0: unknown).
	App                    uint16
	SrcAS, DstAS           uint32
	SrcCountry, DstCountry [2]byte
}
