package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/netsampler/goflow2/v2/decoders/netflow"

	"github.com/tmsd/tmsd/internal/flow"
)

// NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) share their set structure.
// Sets are walked here rather than by goflow2's DecodeMessageVersion, which
// boxes every field value in an interface (allocations per field), aborts
// on malformed sets, and loops forever on a data set whose template has no
// fields (an IPFIX template withdrawal is exactly that). Templates still live
// in a netflow.NetFlowTemplateSystem, one per exporter.

const (
	v9HeaderLength    = 20
	ipfixHeaderLength = 16
	setHeaderLength   = 4

	// ntpEpochOffset is the seconds from 1900 (NTP) to 1970 (unix).
	ntpEpochOffset = 2_208_988_800
)

// NetFlow v9/IPFIX information elements used to build records.
const (
	fieldInBytes             = 1
	fieldInPkts              = 2
	fieldProtocol            = 4
	fieldSrcTOS              = 5
	fieldTCPFlags            = 6
	fieldL4SrcPort           = 7
	fieldIPv4SrcAddr         = 8
	fieldInputSNMP           = 10
	fieldL4DstPort           = 11
	fieldIPv4DstAddr         = 12
	fieldOutputSNMP          = 14
	fieldSrcAS               = 16
	fieldDstAS               = 17
	fieldLastSwitched        = 21
	fieldFirstSwitched       = 22
	fieldOutBytes            = 23
	fieldOutPkts             = 24
	fieldIPv6SrcAddr         = 27
	fieldIPv6DstAddr         = 28
	fieldSamplingInterval    = 34
	fieldSamplerID           = 48
	fieldSamplerRandomIntvl  = 50
	fieldInterfaceName       = 82
	fieldInterfaceDesc       = 83
	fieldOctetTotalCount     = 85
	fieldPacketTotalCount    = 86
	fieldFlowStartSeconds    = 150
	fieldFlowEndSeconds      = 151
	fieldFlowStartMillis     = 152
	fieldFlowEndMillis       = 153
	fieldFlowStartMicros     = 154
	fieldFlowEndMicros       = 155
	fieldFlowStartNanos      = 156
	fieldFlowEndNanos        = 157
	fieldFlowStartDeltaMicro = 158
	fieldFlowEndDeltaMicro   = 159
	fieldSystemInitMillis    = 160
	fieldIPDiffServCodePoint = 195
	fieldSelectorID          = 302
	fieldSamplingPktInterval = 305
	fieldSamplingPktSpace    = 306
)

// nfHeader is what a set needs from its message header.
type nfHeader struct {
	version   uint16
	domain    uint32 // v9 source ID, IPFIX observation domain
	exportMs  int64  // export time, unix ms
	sysUptime uint32 // v9 only, ms
}

func (h *nfHeader) protocol() flow.Protocol {
	if h.version == 9 {
		return flow.ProtoNetFlowV9
	}
	return flow.ProtoIPFIX
}

func (dg *datagram) malformed(format string, args ...any) {
	dg.fail(fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...))
}

// decodeNetFlow decodes a NetFlow v9 (version 9) or IPFIX (10) message.
func (dg *datagram) decodeNetFlow(p []byte, version uint16) {
	h := nfHeader{version: version}
	var body []byte
	if version == 9 {
		if len(p) < v9HeaderLength {
			dg.malformed("NetFlow v9 header needs %d bytes, got %d", v9HeaderLength, len(p))
			return
		}
		h.sysUptime = binary.BigEndian.Uint32(p[4:])
		h.exportMs = int64(binary.BigEndian.Uint32(p[8:])) * 1000
		h.domain = binary.BigEndian.Uint32(p[16:])
		body = p[v9HeaderLength:]
	} else {
		if len(p) < ipfixHeaderLength {
			dg.malformed("IPFIX header needs %d bytes, got %d", ipfixHeaderLength, len(p))
			return
		}
		length := int(binary.BigEndian.Uint16(p[2:]))
		switch {
		case length < ipfixHeaderLength:
			dg.malformed("IPFIX message length %d", length)
			return
		case length > len(p):
			// Decode the sets that made it; the cut one fails below.
			dg.malformed("IPFIX message of %d bytes truncated to %d", length, len(p))
		default:
			p = p[:length]
		}
		h.exportMs = int64(binary.BigEndian.Uint32(p[4:])) * 1000
		h.domain = binary.BigEndian.Uint32(p[12:])
		body = p[ipfixHeaderLength:]
	}

	for len(body) > 0 {
		if len(body) < setHeaderLength {
			if version == 10 { // the message length is exact: no room for padding
				dg.malformed("IPFIX: %d stray bytes after the last set", len(body))
			}
			return // NetFlow v9: padding
		}
		id := binary.BigEndian.Uint16(body)
		length := int(binary.BigEndian.Uint16(body[2:]))
		if length < setHeaderLength || length > len(body) {
			dg.malformed("set %d of length %d with %d bytes left", id, length, len(body))
			return
		}
		set := body[setHeaderLength:length]
		body = body[length:]
		switch {
		case version == 9 && id == 0, version == 10 && id == 2:
			dg.templateSet(&h, set)
		case version == 9 && id == 1:
			dg.v9OptionsTemplateSet(&h, set)
		case version == 10 && id == 3:
			dg.ipfixOptionsTemplateSet(&h, set)
		case id >= 256:
			dg.dataSet(&h, id, set)
		}
		// Other set IDs are reserved: skipped, as the RFCs ask.
		if dg.newTemplate {
			dg.release()
		}
	}
}

// templateSet parses a (data) template set.
func (dg *datagram) templateSet(h *nfHeader, set []byte) {
	for len(set) >= 4 {
		id := binary.BigEndian.Uint16(set)
		count := int(binary.BigEndian.Uint16(set[2:]))
		set = set[4:]
		switch {
		case id == 0 && count == 0:
			return // padding
		case count == 0 && h.version == 10:
			dg.withdraw(h, id, 2, false)
			continue
		case id < 256 || count == 0:
			dg.malformed("template %d with %d fields", id, count)
			return
		}
		fields, rest, ok := dg.parseFields(h.version, set, count)
		if !ok {
			dg.malformed("template %d: %d fields truncated", id, count)
			return
		}
		set = rest
		dg.addTemplate(h, id, fields, 0, false)
	}
}

// v9OptionsTemplateSet parses a NetFlow v9 options template set, whose
// scope and option lengths are in bytes.
func (dg *datagram) v9OptionsTemplateSet(h *nfHeader, set []byte) {
	for len(set) >= 6 {
		id := binary.BigEndian.Uint16(set)
		scopeLength := int(binary.BigEndian.Uint16(set[2:]))
		optionLength := int(binary.BigEndian.Uint16(set[4:]))
		if id == 0 {
			return // padding
		}
		if id < 256 || scopeLength%4 != 0 || optionLength%4 != 0 || scopeLength+optionLength == 0 {
			dg.malformed("options template %d with scope length %d, option length %d", id, scopeLength, optionLength)
			return
		}
		scopes := scopeLength / 4
		fields, rest, ok := dg.parseFields(9, set[6:], scopes+optionLength/4)
		if !ok {
			dg.malformed("options template %d truncated", id)
			return
		}
		set = rest
		dg.addTemplate(h, id, fields, scopes, true)
	}
}

// ipfixOptionsTemplateSet parses an IPFIX options template set.
func (dg *datagram) ipfixOptionsTemplateSet(h *nfHeader, set []byte) {
	for len(set) >= 4 {
		id := binary.BigEndian.Uint16(set)
		count := int(binary.BigEndian.Uint16(set[2:]))
		switch {
		case id == 0 && count == 0:
			return // padding
		case count == 0: // a withdrawal has no scope count
			dg.withdraw(h, id, 3, true)
			set = set[4:]
			continue
		case len(set) < 6:
			dg.malformed("options template %d truncated", id)
			return
		}
		scopes := int(binary.BigEndian.Uint16(set[4:]))
		if id < 256 || scopes == 0 || scopes > count {
			dg.malformed("options template %d with %d fields, %d scopes", id, count, scopes)
			return
		}
		fields, rest, ok := dg.parseFields(10, set[6:], count)
		if !ok {
			dg.malformed("options template %d truncated", id)
			return
		}
		set = rest
		dg.addTemplate(h, id, fields, scopes, true)
	}
}

// withdraw handles an IPFIX template withdrawal; allID (the set's own ID)
// withdraws every template of that kind in the domain.
func (dg *datagram) withdraw(h *nfHeader, id, allID uint16, options bool) {
	ts := dg.e.templates
	if id == allID {
		if ts.removeAll(h.version, h.domain, options) > 0 {
			dg.e.changed()
		}
		return
	}
	if _, err := ts.RemoveTemplate(h.version, h.domain, id); err == nil { // withdrawing an unknown template is harmless
		dg.e.changed()
	}
}

// parseFields parses count field specifiers into the exporter's scratch
// slice, returning the rest of b. IPFIX enterprise fields carry 4 more bytes.
func (dg *datagram) parseFields(version uint16, b []byte, count int) ([]templateField, []byte, bool) {
	fields := dg.e.fieldsTmp[:0]
	defer func() { dg.e.fieldsTmp = fields[:0] }()
	for range count {
		if len(b) < 4 {
			return nil, nil, false
		}
		f := templateField{id: binary.BigEndian.Uint16(b), length: binary.BigEndian.Uint16(b[2:])}
		b = b[4:]
		if version == 10 && f.id&0x8000 != 0 {
			if len(b) < 4 {
				return nil, nil, false
			}
			b = b[4:]
			f.id &^= 0x8000
			f.enterprise = true
		}
		fields = append(fields, f)
	}
	return fields, b, true
}

// addTemplate stores a template unless an identical one is known already
// (exporters resend templates every few datagrams): then it only refreshes
// its expiry.
func (dg *datagram) addTemplate(h *nfHeader, id uint16, fields []templateField, scopes int, options bool) {
	ts := dg.e.templates
	if known, err := ts.lookup(h.version, h.domain, id); err == nil && known.equal(fields, scopes, options) {
		known.refreshed = max(known.refreshed, dg.received)
		return
	}
	for _, f := range fields {
		if f.length != variableLength && int(f.length) > dg.e.limits.maxFieldLength {
			dg.fail(fmt.Errorf("template %d of domain %d: %w: field %d of %d bytes, more than %d",
				id, h.domain, errFieldLength, f.id, f.length, dg.e.limits.maxFieldLength))
			return
		}
	}
	t := newTemplate(fields, scopes, options, dg.received)
	if t.minLength == 0 {
		// Records of zero bytes cannot be walked.
		dg.malformed("template %d has only zero-length fields", id)
		return
	}
	if err := ts.AddTemplate(h.version, h.domain, id, t); err != nil {
		dg.fail(fmt.Errorf("template %d of domain %d: %w", id, h.domain, err))
		return
	}
	dg.newTemplate = true
	dg.e.changed()
}

// dataSet decodes the records of a data set with the template it names; a
// set whose template is unknown (or expired) is held for finish if it can be.
func (dg *datagram) dataSet(h *nfHeader, id uint16, set []byte) {
	t, err := dg.e.templates.lookup(h.version, h.domain, id)
	if err == nil && dg.e.expired(t, dg.received) {
		_, _ = dg.e.templates.RemoveTemplate(h.version, h.domain, id)
		dg.e.templatesExpired++
		dg.e.changed()
		t, err = nil, netflow.ErrorTemplateNotFound
	}
	if err != nil {
		if !errors.Is(err, netflow.ErrorTemplateNotFound) {
			dg.fail(fmt.Errorf("%s domain %d template %d: %w", h.protocol(), h.domain, id, err))
			return
		}
		if dg.holdSet(h, id, set) {
			return
		}
		if !dg.reasons.has(reasonTemplateUnknown) {
			dg.e.dropped++ // once per datagram, as the reason
		}
		dg.fail(fmt.Errorf("%s domain %d template %d: %w", h.protocol(), h.domain, id, ErrTemplateUnknown))
		return
	}
	dg.walk(h, id, t, set)
}

// walk decodes the records of a data set of template t.
func (dg *datagram) walk(h *nfHeader, id uint16, t *template, set []byte) {
	// Trailing bytes shorter than a record are padding (RFC 7011 3.3.1).
	for len(set) >= t.minLength {
		if !dg.record() {
			return
		}
		var r nfRecord
		rest, status := r.parse(h, t, set, dg.e.limits.maxFieldLength)
		switch status {
		case recordOverrun:
			dg.malformed("data set %d: record overruns the set", id)
			return
		case recordFieldTooLong:
			dg.fail(fmt.Errorf("data set %d: %w: a variable-length value is longer than %d bytes",
				id, errFieldLength, dg.e.limits.maxFieldLength))
			set = rest
			continue // the record is walked, not used
		}
		set = rest
		if t.options {
			dg.applyOptions(h, &r)
		} else {
			dg.emit(h, &r)
		}
	}
}

// Presence bits of nfRecord fields.
const (
	hasInBytes uint32 = 1 << iota
	hasTotalBytes
	hasOutBytes
	hasInPkts
	hasTotalPkts
	hasOutPkts
	hasSrc
	hasDst
	hasStartAbs
	hasEndAbs
	hasStartUptime
	hasEndUptime
	hasStartDelta
	hasEndDelta
	hasSystemInit
	hasSamplingInterval
	hasRandomInterval
	hasPktInterval
	hasPktSpace
	hasSampler
	hasSrcTOS
)

// nfRecord accumulates one data record's fields until it can be turned
// into a flow.Record (several fields compete for the same meaning).
type nfRecord struct {
	rec                                          flow.Record
	has                                          uint32
	inBytes, totalBytes, outBytes                uint64
	inPkts, totalPkts, outPkts                   uint64
	startAbs, endAbs, systemInit                 int64
	startUptime, endUptime, startDelta, endDelta uint32
	samplingInterval, randomInterval             uint64
	pktInterval, pktSpace, sampler               uint64
	// Options data naming an interface: its ifIndex (v9 scope 2, or
	// ingress/egressInterface), name and description (valid while the
	// datagram is).
	ifIndex        uint32
	hasIfIndex     bool
	ifName, ifDesc []byte
}

// Outcomes of nfRecord.parse.
const (
	recordOK = iota
	recordOverrun
	recordFieldTooLong // the record was walked; the rest is valid
)

// parse walks one record of template t at the start of b and returns the
// rest. A variable-length value longer than maxField is walked, not set.
func (r *nfRecord) parse(h *nfHeader, t *template, b []byte, maxField int) ([]byte, int) {
	status := recordOK
	for i, f := range t.fields {
		length := int(f.length)
		if f.length == variableLength {
			if len(b) < 1 {
				return nil, recordOverrun
			}
			length, b = int(b[0]), b[1:]
			if length == 255 {
				if len(b) < 2 {
					return nil, recordOverrun
				}
				length, b = int(binary.BigEndian.Uint16(b)), b[2:]
			}
			if length > maxField {
				status = recordFieldTooLong
			}
		}
		if len(b) < length {
			return nil, recordOverrun
		}
		value := b[:length]
		b = b[length:]
		// v9 scope fields use their own numbering (1 = system, 2 = interface...).
		if f.enterprise {
			continue
		}
		if h.version == 9 && i < t.scopes {
			if f.id == v9ScopeInterface {
				r.ifIndex, r.hasIfIndex = uint32(uintBE(value)), true
			}
			continue
		}
		r.set(h, f.id, value)
	}
	return b, status
}

// set interprets one field value.
func (r *nfRecord) set(h *nfHeader, id uint16, v []byte) {
	switch id {
	case fieldInBytes:
		r.inBytes, r.has = uintBE(v), r.has|hasInBytes
	case fieldOctetTotalCount:
		r.totalBytes, r.has = uintBE(v), r.has|hasTotalBytes
	case fieldOutBytes:
		r.outBytes, r.has = uintBE(v), r.has|hasOutBytes
	case fieldInPkts:
		r.inPkts, r.has = uintBE(v), r.has|hasInPkts
	case fieldPacketTotalCount:
		r.totalPkts, r.has = uintBE(v), r.has|hasTotalPkts
	case fieldOutPkts:
		r.outPkts, r.has = uintBE(v), r.has|hasOutPkts
	case fieldProtocol:
		r.rec.Proto = uint8(uintBE(v))
	case fieldTCPFlags:
		r.rec.TCPFlags = uint8(uintBE(v)) // IPFIX has 16 bits; the classic flags are the low 8
	case fieldSrcTOS:
		r.rec.TOS, r.has = uint8(uintBE(v)), r.has|hasSrcTOS
	case fieldIPDiffServCodePoint: // IPFIX: the DSCP alone, the ToS byte's top 6 bits; 5 wins
		if r.has&hasSrcTOS == 0 {
			r.rec.TOS = uint8(uintBE(v)) << 2
		}
	case fieldL4SrcPort:
		r.rec.SrcPort = uint16(uintBE(v))
	case fieldL4DstPort:
		r.rec.DstPort = uint16(uintBE(v))
	case fieldSrcAS:
		r.rec.SrcAS = uint32(uintBE(v))
	case fieldDstAS:
		r.rec.DstAS = uint32(uintBE(v))
	case fieldInterfaceName:
		r.ifName = v
	case fieldInterfaceDesc:
		r.ifDesc = v
	case fieldInputSNMP:
		r.rec.InIf = uint32(uintBE(v))
	case fieldOutputSNMP:
		r.rec.OutIf = uint32(uintBE(v))
	case fieldIPv4SrcAddr, fieldIPv6SrcAddr:
		if a, ok := flow.AddrFromSlice(v); ok {
			r.rec.SrcAddr, r.has = a, r.has|hasSrc
		}
	case fieldIPv4DstAddr, fieldIPv6DstAddr:
		if a, ok := flow.AddrFromSlice(v); ok {
			r.rec.DstAddr, r.has = a, r.has|hasDst
		}
	case fieldFirstSwitched:
		r.startUptime, r.has = uint32(uintBE(v)), r.has|hasStartUptime
	case fieldLastSwitched:
		r.endUptime, r.has = uint32(uintBE(v)), r.has|hasEndUptime
	case fieldFlowStartSeconds:
		r.startAbs, r.has = int64(uintBE(v))*1000, r.has|hasStartAbs
	case fieldFlowEndSeconds:
		r.endAbs, r.has = int64(uintBE(v))*1000, r.has|hasEndAbs
	case fieldFlowStartMillis:
		r.startAbs, r.has = int64(uintBE(v)), r.has|hasStartAbs
	case fieldFlowEndMillis:
		r.endAbs, r.has = int64(uintBE(v)), r.has|hasEndAbs
	case fieldFlowStartMicros, fieldFlowStartNanos:
		r.startAbs, r.has = ntpToUnixMs(uintBE(v)), r.has|hasStartAbs
	case fieldFlowEndMicros, fieldFlowEndNanos:
		r.endAbs, r.has = ntpToUnixMs(uintBE(v)), r.has|hasEndAbs
	case fieldFlowStartDeltaMicro:
		r.startDelta, r.has = uint32(uintBE(v)), r.has|hasStartDelta
	case fieldFlowEndDeltaMicro:
		r.endDelta, r.has = uint32(uintBE(v)), r.has|hasEndDelta
	case fieldSystemInitMillis:
		r.systemInit, r.has = int64(uintBE(v)), r.has|hasSystemInit
	case fieldSamplingInterval:
		r.samplingInterval, r.has = uintBE(v), r.has|hasSamplingInterval
	case fieldSamplerRandomIntvl:
		r.randomInterval, r.has = uintBE(v), r.has|hasRandomInterval
	case fieldSamplingPktInterval:
		r.pktInterval, r.has = uintBE(v), r.has|hasPktInterval
	case fieldSamplingPktSpace:
		r.pktSpace, r.has = uintBE(v), r.has|hasPktSpace
	case fieldSamplerID, fieldSelectorID:
		r.sampler, r.has = uintBE(v), r.has|hasSampler
	}
}

// rate returns the sampling rate the record's own fields give, if any:
// packet interval/space (1 in (interval+space)/interval), else the v9
// sampling interval, else the random sampler's interval. A zero is no rate.
func (r *nfRecord) rate() (uint32, bool) {
	var rate uint64
	switch {
	case r.has&hasPktInterval != 0 && r.pktInterval != 0:
		rate = (r.pktInterval + r.pktSpace) / r.pktInterval
	case r.has&hasSamplingInterval != 0 && r.samplingInterval != 0:
		rate = r.samplingInterval
	case r.has&hasRandomInterval != 0 && r.randomInterval != 0:
		rate = r.randomInterval
	default:
		return 0, false
	}
	return uint32(min(rate, 1<<32-1)), true
}

// applyOptions keeps what an options data record tells about the exporter.
func (dg *datagram) applyOptions(h *nfHeader, r *nfRecord) {
	if rate, ok := r.rate(); ok {
		dg.e.setSampler(samplerKey{version: h.version, domain: h.domain, sampler: r.sampler}, rate)
	}
	if r.has&hasSystemInit != 0 {
		dg.e.setSystemInit(h.domain, r.systemInit)
	}
	if r.ifName != nil || r.ifDesc != nil {
		idx, ok := r.ifIndex, r.hasIfIndex
		if !ok { // IPFIX: the interface is an ingress/egressInterface field, scope or not
			idx, ok = r.rec.InIf, r.rec.InIf != 0
			if !ok {
				idx, ok = r.rec.OutIf, r.rec.OutIf != 0
			}
		}
		if ok {
			dg.e.setInterfaceName(idx, r.ifName, r.ifDesc)
		}
	}
}

// emit turns a data record into a flow.Record, unless it has no address:
// then it is not a flow (some exporters send interface tables as data).
func (dg *datagram) emit(h *nfHeader, r *nfRecord) {
	if r.has&(hasSrc|hasDst) == 0 {
		return
	}
	rate, ok := r.rate()
	source := sourceRecord
	if !ok {
		rate, ok = dg.e.sampler(samplerKey{version: h.version, domain: h.domain, sampler: r.sampler})
		source = sourceOptions
		if !ok {
			source = sourceNone
		}
	}
	rate = dg.sampling(rate, source)

	rec := &r.rec
	switch {
	case r.has&hasInBytes != 0:
		rec.Bytes = r.inBytes
	case r.has&hasTotalBytes != 0:
		rec.Bytes = r.totalBytes
	default:
		rec.Bytes = r.outBytes
	}
	switch {
	case r.has&hasInPkts != 0:
		rec.Packets = r.inPkts
	case r.has&hasTotalPkts != 0:
		rec.Packets = r.totalPkts
	default:
		rec.Packets = r.outPkts
	}
	rec.Bytes = scaleSaturating(rec.Bytes, rate)
	rec.Packets = scaleSaturating(rec.Packets, rate)
	rec.Start = r.time(dg.e, h, hasStartAbs, r.startAbs, hasStartUptime, r.startUptime, hasStartDelta, r.startDelta)
	rec.End = r.time(dg.e, h, hasEndAbs, r.endAbs, hasEndUptime, r.endUptime, hasEndDelta, r.endDelta)
	rec.Exporter = dg.exporter
	rec.Received = dg.received
	rec.SamplingRate = rate
	rec.ObsDomain = h.domain
	rec.Export = h.protocol()
	dg.out = append(dg.out, *rec)
}

// scaleSaturating multiplies a 64-bit counter by the sampling rate. A product
// that overflows saturates: wrapped, it would count a huge flow as a small one.
func scaleSaturating(v uint64, rate uint32) uint64 {
	hi, lo := bits.Mul64(v, uint64(rate))
	if hi != 0 {
		return math.MaxUint64
	}
	return lo
}

// time picks a flow start or end time in unix ms, 0 if unknown: an absolute
// time first, else a sysUptime-relative one (v9: against the header's
// sysUptime; IPFIX: against systemInitTimeMilliseconds, from the record or
// the domain's options, unknown without it), else a delta to the export time.
func (r *nfRecord) time(e *exporter, h *nfHeader, absBit uint32, abs int64, uptimeBit uint32, uptime uint32, deltaBit uint32, delta uint32) int64 {
	switch {
	case r.has&absBit != 0:
		return abs
	case r.has&uptimeBit != 0:
		if h.version == 9 {
			return uptimeToUnixMs(h.exportMs, h.sysUptime, uptime)
		}
		if r.has&hasSystemInit != 0 {
			return r.systemInit + int64(uptime)
		}
		if init, ok := e.systemInit[h.domain]; ok {
			return init + int64(uptime)
		}
		return 0
	case r.has&deltaBit != 0:
		return h.exportMs - int64(delta/1000)
	}
	return 0
}

// ntpToUnixMs converts an NTP timestamp (seconds since 1900 in the high 32
// bits, binary fraction in the low 32), as IPFIX micro/nanosecond times are
// encoded, to unix ms. Seconds with the top bit clear are in NTP era 1 (from
// 2036), as RFC 4330 suggests.
func ntpToUnixMs(v uint64) int64 {
	secs := int64(v >> 32)
	if secs < 1<<31 {
		secs += 1 << 32
	}
	frac := int64((v & 0xffffffff) * 1000 >> 32)
	return (secs-ntpEpochOffset)*1000 + frac
}
