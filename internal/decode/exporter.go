package decode

import (
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tmsd/tmsd/internal/flow"
)

// Sampling sources, as reported in ExporterStats.SamplingSource.
const (
	sourceHeader   = "header"   // NetFlow v5 header
	sourceOptions  = "options"  // NetFlow v9/IPFIX options data
	sourceRecord   = "record"   // a field of the flow record itself
	sourceSample   = "sample"   // sFlow flow sample
	sourceOverride = "override" // Configuration.SamplingOverride
	sourceNone     = "none"     // the export carries no rate: 1
)

// Per-exporter bounds on state an exporter (or a spoofer) can make us keep.
const (
	maxSamplersPerExporter   = 1024
	maxInterfacesPerExporter = 16384
	logInterval              = time.Minute
)

// ExporterStats is a snapshot of what the decoder knows about one exporter.
type ExporterStats struct {
	Address   netip.Addr
	Protocols []string // flow.Protocol names seen, in flow.Protocol order
	Datagrams uint64   // every datagram, failed ones included
	Bytes     uint64   // their UDP payload bytes
	Flows     uint64   // records emitted
	Errors    map[string]uint64
	// Templates is the number of templates known, all observation domains.
	Templates int
	// SamplingRate is the last rate applied, after override.
	SamplingRate   uint32
	LastSeen       time.Time
	SamplingSource string
	// Interfaces are the latest sFlow generic interface counters, by ifIndex.
	Interfaces []InterfaceCounters
	// TimeCorrections is counted by the aggregator; the decoder leaves it 0.
	TimeCorrections uint64
	// TemplatesExpired counts templates forgotten after TemplateTimeout
	// without being announced again.
	TemplatesExpired uint64
	// Datagrams whose NetFlow v9/IPFIX data sets arrived before their
	// template: Held entered the hold, Released left it decoded when the
	// template came, Holding are waiting now. Dropped were given up, past
	// HoldTime or refused for lack of room; they are also counted under
	// Errors["template_unknown"]. Held = Released + Holding + the expired
	// part of Dropped.
	Held, Released, Dropped uint64
	Holding                 int
}

// InterfaceCounters are the sFlow generic interface counters of one interface.
type InterfaceCounters struct {
	IfIndex   uint32
	Speed     uint64
	Direction uint32
	Status    uint32
	// Packet counters are unicast + multicast + broadcast.
	InOctets, OutOctets, InPackets, OutPackets   uint64
	InErrors, OutErrors, InDiscards, OutDiscards uint32
	Updated                                      time.Time
}

// samplerKey identifies a sampling rate announced in NetFlow v9/IPFIX options
// data. sampler is 0 when the options record names no sampler: the rate of
// the whole observation domain.
type samplerKey struct {
	version uint16
	domain  uint32
	sampler uint64
}

// exporter is the state of one exporter IP. Everything is guarded by mu,
// held for the whole decoding of a datagram.
type exporter struct {
	mu         sync.Mutex
	addr       netip.Addr
	override   uint32  // 0 = none
	limits     *limits // the decoder's
	generation *atomic.Uint64

	templates  *templateSystem
	nextSweep  int64 // unix ms of the next expired template sweep
	samplers   map[samplerKey]uint32
	systemInit map[uint32]int64 // IPFIX systemInitTimeMilliseconds per observation domain
	interfaces map[uint32]InterfaceCounters
	ifNames    map[uint32][2]string // name, description from options data (names.Options)
	fieldsTmp  []templateField      // scratch to parse templates without allocating

	protocols        uint32 // bit per flow.Protocol
	datagrams        uint64
	bytes            uint64 // datagram payload bytes
	flows            uint64
	errors           [reasonCount]uint64
	samplingRate     uint32
	samplingSource   string
	lastSeen         time.Time
	lastLog          time.Time
	templatesExpired uint64

	held                []heldDatagram // in arrival order
	heldBytes           int            // sum of len(sets)
	heldCount, released uint64
	dropped             uint64
}

// heldDatagram is what a datagram left undecoded for want of templates: its
// data sets (headers included, copied), the header they need and when it
// was received.
type heldDatagram struct {
	h        nfHeader
	received int64 // unix ms
	sets     []byte
}

func newExporter(addr netip.Addr, l *limits, generation *atomic.Uint64, override uint32) *exporter {
	return &exporter{
		addr:           addr,
		override:       override,
		limits:         l,
		generation:     generation,
		templates:      newTemplateSystem(l.maxTemplates),
		samplers:       make(map[samplerKey]uint32),
		systemInit:     make(map[uint32]int64),
		interfaces:     make(map[uint32]InterfaceCounters),
		ifNames:        make(map[uint32][2]string),
		samplingSource: sourceNone,
	}
}

// account counts a decoded datagram.
func (e *exporter) account(dg *datagram, flows, size int, received time.Time) {
	e.datagrams++
	e.bytes += uint64(size)
	e.flows += uint64(flows)
	if dg.proto != flow.ProtoUnknown {
		e.protocols |= 1 << dg.proto
	}
	for r := range reasonCount {
		if dg.reasons.has(r) {
			e.errors[r]++
		}
	}
	if received.After(e.lastSeen) {
		e.lastSeen = received
	}
}

// logThrottled logs a decoding error at most once per logInterval per
// exporter: the counters tell how many, the log tells what.
func (e *exporter) logThrottled(logger *slog.Logger, err error) {
	now := time.Now()
	if now.Sub(e.lastLog) < logInterval {
		return
	}
	e.lastLog = now
	logger.Warn("cannot decode datagram (further errors from this exporter muted for a minute)",
		"exporter", e.addr, "error", err)
}

// changed notes a change to what State saves.
func (e *exporter) changed() { e.generation.Add(1) }

// setSampler stores a rate announced by options data, within bounds.
func (e *exporter) setSampler(k samplerKey, rate uint32) {
	old, ok := e.samplers[k]
	switch {
	case ok && old == rate: // exporters resend their options every few datagrams
		return
	case !ok && len(e.samplers) >= maxSamplersPerExporter:
		return
	}
	e.samplers[k] = rate
	e.changed()
}

// sampler returns the options rate for a sampler, falling back to the
// observation domain's rate.
func (e *exporter) sampler(k samplerKey) (uint32, bool) {
	if rate, ok := e.samplers[k]; ok {
		return rate, true
	}
	if k.sampler != 0 {
		k.sampler = 0
		rate, ok := e.samplers[k]
		return rate, ok
	}
	return 0, false
}

func (e *exporter) setSystemInit(domain uint32, ms int64) {
	old, ok := e.systemInit[domain]
	switch {
	case ok && old == ms:
		return
	case !ok && len(e.systemInit) >= maxSamplersPerExporter:
		return
	}
	e.systemInit[domain] = ms
	e.changed()
}

func (e *exporter) setInterface(c InterfaceCounters) {
	if _, ok := e.interfaces[c.IfIndex]; !ok && len(e.interfaces) >= maxInterfacesPerExporter {
		return
	}
	e.interfaces[c.IfIndex] = c
}

func (e *exporter) stats() ExporterStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := ExporterStats{
		Address:        e.addr,
		Datagrams:      e.datagrams,
		Bytes:          e.bytes,
		Flows:          e.flows,
		Errors:         make(map[string]uint64),
		Templates:      e.templates.len(),
		SamplingRate:   e.samplingRate,
		LastSeen:       e.lastSeen,
		SamplingSource: e.samplingSource,

		TemplatesExpired: e.templatesExpired,
		Held:             e.heldCount,
		Released:         e.released,
		Dropped:          e.dropped,
		Holding:          len(e.held),
	}
	for p := flow.ProtoNetFlowV5; p <= flow.ProtoSFlowV5; p++ {
		if e.protocols&(1<<p) != 0 {
			s.Protocols = append(s.Protocols, p.String())
		}
	}
	for r, n := range e.errors {
		if n != 0 {
			s.Errors[reasonNames[r]] = n
		}
	}
	for _, ifIndex := range slices.Sorted(maps.Keys(e.interfaces)) {
		s.Interfaces = append(s.Interfaces, e.interfaces[ifIndex])
	}
	return s
}

// Exporters returns a snapshot of every exporter seen, sorted by address.
func (d *Decoder) Exporters() []ExporterStats {
	d.mu.RLock()
	exporters := slices.Collect(maps.Values(d.exporters))
	d.mu.RUnlock()
	stats := make([]ExporterStats, 0, len(exporters))
	for _, e := range exporters {
		stats = append(stats, e.stats())
	}
	slices.SortFunc(stats, func(a, b ExporterStats) int { return a.Address.Compare(b.Address) })
	return stats
}
