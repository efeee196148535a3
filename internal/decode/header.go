package decode

import (
	"encoding/binary"

	"github.com/tmsd/tmsd/internal/flow"
)

// Sampled packet headers (sFlow) are parsed down to L4 ports by hand: a
// sampled header is routinely cut at 128 bytes, so every layer takes what is
// there and a short layer just ends the parsing, never an error.

const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeVLAN  = 0x8100
	etherTypeQinQ  = 0x88a8
	etherTypeQinQ2 = 0x9100 // pre-standard Q-in-Q

	ipProtoTCP  = 6
	ipProtoUDP  = 17
	ipProtoSCTP = 132

	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6DestOpts = 60
	// maxIPv6Extensions bounds the extension header walk.
	maxIPv6Extensions = 8
)

// parseHeader fills rec's addresses, ToS, protocol, ports and TCP flags from a
// sampled header of the given sFlow header protocol. It reports whether the
// header held an IP packet.
func parseHeader(protocol uint32, b []byte, rec *flow.Record) bool {
	switch protocol {
	case sflowHeaderEthernet:
		return parseEthernet(b, rec)
	case sflowHeaderIPv4:
		return parseIPv4(b, rec)
	case sflowHeaderIPv6:
		return parseIPv6(b, rec)
	}
	return false
}

func parseEthernet(b []byte, rec *flow.Record) bool {
	if len(b) < 14 {
		return false
	}
	etherType := binary.BigEndian.Uint16(b[12:])
	b = b[14:]
	// Any number of VLAN tags: each is a TCI then the next EtherType.
	for etherType == etherTypeVLAN || etherType == etherTypeQinQ || etherType == etherTypeQinQ2 {
		if len(b) < 4 {
			return false
		}
		etherType = binary.BigEndian.Uint16(b[2:])
		b = b[4:]
	}
	switch etherType {
	case etherTypeIPv4:
		return parseIPv4(b, rec)
	case etherTypeIPv6:
		return parseIPv6(b, rec)
	}
	return false
}

func parseIPv4(b []byte, rec *flow.Record) bool {
	if len(b) < 20 || b[0]>>4 != 4 {
		return false
	}
	rec.Proto = b[9]
	rec.TOS = b[1]
	rec.SrcAddr = flow.AddrFromV4(b[12:16])
	rec.DstAddr = flow.AddrFromV4(b[16:20])
	headerLength := int(b[0]&0x0f) * 4
	fragmentOffset := binary.BigEndian.Uint16(b[6:]) & 0x1fff
	if headerLength >= 20 && headerLength <= len(b) && fragmentOffset == 0 {
		parseL4(b[headerLength:], rec)
	}
	return true
}

func parseIPv6(b []byte, rec *flow.Record) bool {
	if len(b) < 40 || b[0]>>4 != 6 {
		return false
	}
	rec.TOS = uint8(binary.BigEndian.Uint16(b) >> 4) // traffic class: the 8 bits after the version
	rec.SrcAddr, _ = flow.AddrFromSlice(b[8:24])
	rec.DstAddr, _ = flow.AddrFromSlice(b[24:40])
	next := b[6]
	b = b[40:]
	for range maxIPv6Extensions {
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
			if len(b) < 2 {
				rec.Proto = next
				return true
			}
			length := (int(b[1]) + 1) * 8
			next = b[0]
			if length > len(b) {
				rec.Proto = next
				return true
			}
			b = b[length:]
			continue
		case ipv6Fragment:
			if len(b) < 8 {
				rec.Proto = next
				return true
			}
			next = b[0]
			if binary.BigEndian.Uint16(b[2:])>>3 != 0 {
				rec.Proto = next // a later fragment: no L4 header
				return true
			}
			b = b[8:]
			continue
		}
		break
	}
	rec.Proto = next
	parseL4(b, rec)
	return true
}

// parseL4 reads ports (TCP, UDP, SCTP) and TCP flags. ICMP keeps ports 0.
func parseL4(b []byte, rec *flow.Record) {
	switch rec.Proto {
	case ipProtoTCP, ipProtoUDP, ipProtoSCTP:
		if len(b) < 4 {
			return
		}
		rec.SrcPort = binary.BigEndian.Uint16(b)
		rec.DstPort = binary.BigEndian.Uint16(b[2:])
		if rec.Proto == ipProtoTCP && len(b) >= 14 {
			rec.TCPFlags = b[13]
		}
	}
}
