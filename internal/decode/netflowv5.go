package decode

import (
	"encoding/binary"

	"github.com/tmsd/tmsd/internal/flow"
)

// NetFlow v5 layout (Cisco): a 24-byte header then count 48-byte records.
// Parsed by hand rather than with goflow2's netflowlegacy, which allocates
// count records up front and zero-fills those a truncated datagram lacks,
// without an error.
const (
	v5HeaderLength = 24
	v5RecordLength = 48
)

func (dg *datagram) decodeNetFlowV5(p []byte) {
	if len(p) < v5HeaderLength {
		dg.malformed("NetFlow v5 header needs %d bytes, got %d", v5HeaderLength, len(p))
		return
	}
	count := int(binary.BigEndian.Uint16(p[2:]))
	sysUptime := binary.BigEndian.Uint32(p[4:])
	// Export time in ms: the reference for the sysUptime-relative flow times.
	exportMs := int64(binary.BigEndian.Uint32(p[8:]))*1000 + int64(binary.BigEndian.Uint32(p[12:]))/1_000_000
	engine := uint32(p[20])<<8 | uint32(p[21])                   // engine type, engine ID: v5's observation domain
	interval := uint32(binary.BigEndian.Uint16(p[22:]) & 0x3fff) // top 2 bits are the sampling mode

	records := p[v5HeaderLength:]
	if available := len(records) / v5RecordLength; available < count {
		dg.malformed("NetFlow v5 announces %d records, carries %d", count, available)
		count = available
	}
	if count == 0 {
		return
	}
	rate := dg.sampling(interval, sourceHeader)
	for i := range count {
		if !dg.record() {
			return
		}
		r := records[i*v5RecordLength : (i+1)*v5RecordLength]
		dg.out = append(dg.out, flow.Record{
			Exporter:     dg.exporter,
			SrcAddr:      flow.AddrFromV4(r[0:4]),
			DstAddr:      flow.AddrFromV4(r[4:8]),
			InIf:         uint32(binary.BigEndian.Uint16(r[12:])),
			OutIf:        uint32(binary.BigEndian.Uint16(r[14:])),
			Packets:      uint64(binary.BigEndian.Uint32(r[16:])) * uint64(rate),
			Bytes:        uint64(binary.BigEndian.Uint32(r[20:])) * uint64(rate),
			Start:        uptimeToUnixMs(exportMs, sysUptime, binary.BigEndian.Uint32(r[24:])),
			End:          uptimeToUnixMs(exportMs, sysUptime, binary.BigEndian.Uint32(r[28:])),
			SrcPort:      binary.BigEndian.Uint16(r[32:]),
			DstPort:      binary.BigEndian.Uint16(r[34:]),
			TCPFlags:     r[37],
			Proto:        r[38],
			TOS:          r[39],
			Received:     dg.received,
			SamplingRate: rate,
			ObsDomain:    engine,
			Export:       flow.ProtoNetFlowV5,
		})
	}
}

// uptimeToUnixMs converts a sysUptime-relative time (ms since the exporter
// booted) to unix ms, given the export's unix ms and sysUptime. The
// difference is taken in uint32 so a sysUptime that wrapped (every 49.7 days)
// since the flow started still gives a time just before the export.
func uptimeToUnixMs(exportMs int64, sysUptime, switched uint32) int64 {
	return exportMs - int64(sysUptime-switched)
}
