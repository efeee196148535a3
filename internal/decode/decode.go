// Package decode owns turning one export datagram (NetFlow v5/v9, IPFIX, sFlow v5) into flow.Records.
// Each exporter IP has its own state (templates per observation domain, sampling rates, counters) behind
// its own mutex; parsing is bounds-checked by hand, allocation-free per record, and never panics outward.
package decode

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tmsd/tmsd/internal/flow"
)

// Errors returned (wrapped) by Decode. Check them with errors.Is.
var (
	// ErrMalformed means the datagram is truncated or inconsistent.
	ErrMalformed = errors.New("malformed datagram")
	// ErrTemplateUnknown means a NetFlow v9/IPFIX data set references a
	// template not (yet) received, and could not be held until it comes.
	ErrTemplateUnknown = errors.New("unknown template")
	// ErrUnknownVersion means the datagram is none of NetFlow v5/v9, IPFIX, sFlow v5.
	ErrUnknownVersion = errors.New("unknown export version")
	// ErrExporterLimit means the datagram comes from a new source while
	// Configuration.MaxExporters exporters are known: it is dropped unread.
	ErrExporterLimit = errors.New("too many exporters")

	// errPanic marks a recovered panic, so tests can tell a bug from bad input.
	errPanic = errors.New("decoder panic")
)

// Configuration of the decoder. Zero values take the defaults.
type Configuration struct {
	// SamplingOverride forces a sampling rate per exporter address (IPv4 or
	// IPv6 → rate). 0 or absent means use the rate the export carries.
	SamplingOverride map[netip.Addr]uint32
	// MaxExporters bounds the source addresses the decoder keeps state for.
	// Datagrams from further sources are dropped (ErrExporterLimit) and
	// counted decoder-wide (ExporterLimitDrops).
	MaxExporters int
	// MaxTemplatesPerExporter bounds memory per exporter; further templates
	// are refused and counted under the "template_limit" error reason.
	MaxTemplatesPerExporter int
	// MaxRecordsPerDatagram bounds the records read from one datagram
	// (NetFlow/IPFIX data and options records, sFlow samples); the rest is
	// skipped and counted under "record_limit".
	MaxRecordsPerDatagram int
	// MaxFieldLength bounds a NetFlow v9/IPFIX field, in bytes: a template
	// with a longer fixed-length field is refused, and a record with a longer
	// IPFIX variable-length value is skipped; both count under "field_length".
	MaxFieldLength int
	// TemplateTimeout is how long a template lives without being announced
	// again. Exporters resend theirs every 5 to 30 minutes.
	TemplateTimeout time.Duration
	// HoldTime is how long data sets that arrived before their template are
	// held, waiting for it. HoldDatagrams and HoldBytes bound, per exporter,
	// how many datagrams and how many bytes of data sets are held at once;
	// HoldDatagrams < 0 disables holding.
	HoldTime      time.Duration
	HoldDatagrams int
	HoldBytes     int
}

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{
		MaxExporters:            10_000,
		MaxTemplatesPerExporter: 1024,
		MaxRecordsPerDatagram:   4096,
		MaxFieldLength:          4096,
		TemplateTimeout:         time.Hour,
		HoldTime:                2 * time.Second,
		HoldDatagrams:           1000,
		HoldBytes:               2 << 20,
	}
}

// limits are the configured bounds, in the units the decoding loops use.
// Every exporter points to the decoder's; they never change after New.
type limits struct {
	maxTemplates, maxRecords, maxFieldLength int
	templateTimeout, holdTime                int64 // ms
	holdDatagrams, holdBytes                 int   // holdDatagrams 0: holding disabled
}

// Decoder decodes datagrams into flow records. It is safe for concurrent use.
type Decoder struct {
	limits       limits
	maxExporters int
	override     map[netip.Addr]uint32 // keys unmapped
	logger       *slog.Logger

	// generation counts changes to what State saves, so a saver can tell
	// when there is nothing new to write.
	generation atomic.Uint64
	// refused counts datagrams from new sources past maxExporters;
	// refusedLog is the receive time (unix ms) of the last log about it.
	refused    atomic.Uint64
	refusedLog atomic.Int64

	mu        sync.RWMutex
	exporters map[netip.Addr]*exporter // at most maxExporters
}

// New validates the configuration and returns a decoder.
func New(cfg Configuration) (*Decoder, error) {
	def := DefaultConfiguration()
	for _, c := range []struct {
		name  string
		value int64
	}{
		{"MaxExporters", int64(cfg.MaxExporters)},
		{"MaxTemplatesPerExporter", int64(cfg.MaxTemplatesPerExporter)},
		{"MaxRecordsPerDatagram", int64(cfg.MaxRecordsPerDatagram)},
		{"MaxFieldLength", int64(cfg.MaxFieldLength)},
		{"TemplateTimeout", int64(cfg.TemplateTimeout)},
		{"HoldTime", int64(cfg.HoldTime)},
		{"HoldBytes", int64(cfg.HoldBytes)},
	} {
		if c.value < 0 {
			return nil, fmt.Errorf("decode: %s %d is negative", c.name, c.value)
		}
	}
	if cfg.MaxFieldLength >= variableLength {
		return nil, fmt.Errorf("decode: MaxFieldLength %d must be below %d", cfg.MaxFieldLength, variableLength)
	}
	if cfg.TemplateTimeout != 0 && cfg.TemplateTimeout < time.Millisecond ||
		cfg.HoldTime != 0 && cfg.HoldTime < time.Millisecond {
		return nil, errors.New("decode: TemplateTimeout and HoldTime are counted in milliseconds")
	}
	cfg.MaxExporters = cmp.Or(cfg.MaxExporters, def.MaxExporters)
	cfg.MaxTemplatesPerExporter = cmp.Or(cfg.MaxTemplatesPerExporter, def.MaxTemplatesPerExporter)
	cfg.MaxRecordsPerDatagram = cmp.Or(cfg.MaxRecordsPerDatagram, def.MaxRecordsPerDatagram)
	cfg.MaxFieldLength = cmp.Or(cfg.MaxFieldLength, def.MaxFieldLength)
	cfg.TemplateTimeout = cmp.Or(cfg.TemplateTimeout, def.TemplateTimeout)
	cfg.HoldTime = cmp.Or(cfg.HoldTime, def.HoldTime)
	cfg.HoldDatagrams = cmp.Or(cfg.HoldDatagrams, def.HoldDatagrams)
	cfg.HoldBytes = cmp.Or(cfg.HoldBytes, def.HoldBytes)
	override := make(map[netip.Addr]uint32, len(cfg.SamplingOverride))
	for addr, rate := range cfg.SamplingOverride {
		if !addr.IsValid() {
			return nil, errors.New("decode: SamplingOverride has an invalid address")
		}
		if rate != 0 {
			override[addr.Unmap()] = rate
		}
	}
	return &Decoder{
		limits: limits{
			maxTemplates:    cfg.MaxTemplatesPerExporter,
			maxRecords:      cfg.MaxRecordsPerDatagram,
			maxFieldLength:  cfg.MaxFieldLength,
			templateTimeout: cfg.TemplateTimeout.Milliseconds(),
			holdTime:        cfg.HoldTime.Milliseconds(),
			holdDatagrams:   max(cfg.HoldDatagrams, 0),
			holdBytes:       cfg.HoldBytes,
		},
		maxExporters: cfg.MaxExporters,
		override:     override,
		logger:       slog.Default().With("component", "decode"),
		exporters:    make(map[netip.Addr]*exporter),
	}, nil
}

// Decode decodes one datagram from exporter src, received at received,
// appending records to out and returning it. On error it returns the records
// decoded so far and an error wrapping ErrMalformed, ErrTemplateUnknown,
// ErrUnknownVersion (several, joined, if the datagram had several problems)
// or ErrExporterLimit; each reason is also counted once in the exporter's
// stats.
//
// NetFlow v9/IPFIX data sets whose template is unknown are held (see
// Configuration.HoldTime) rather than failed: when a later datagram brings
// the template, its Decode call appends their records too, with their own
// receive time. Limits hit (templates, records, field lengths) are counted
// and logged but not returned: the datagram decoded within them.
func (d *Decoder) Decode(src netip.Addr, payload []byte, received time.Time, out []flow.Record) (records []flow.Record, err error) {
	src = src.Unmap()
	e := d.exporter(src)
	if e == nil {
		d.refuse(src, received)
		return out, ErrExporterLimit
	}
	e.mu.Lock()
	defer e.mu.Unlock()

	dg := datagram{
		e:          e,
		out:        out,
		exporter:   flow.AddrFrom(src),
		received:   received.UnixMilli(),
		receivedAt: received,
	}
	start := len(out)
	defer func() {
		// Hostile input must cost one datagram, never the process.
		if r := recover(); r != nil {
			// Not through fail, which keeps one error per reason: a panic is
			// a bug and must show even after a malformed part of the datagram.
			dg.reasons.add(reasonMalformed)
			dg.errs = append(dg.errs, fmt.Errorf("%w: %w: %v", ErrMalformed, errPanic, r))
			e.dropHeld()
		}
		records = dg.out // also after a panic: the records appended before it are whole
		e.account(&dg, len(records)-start, len(payload), received)
		switch len(dg.errs) {
		case 0:
		case 1:
			err = dg.errs[0]
		default:
			err = errors.Join(dg.errs...)
		}
		if logged := cmp.Or(err, dg.logErr); logged != nil {
			e.logThrottled(d.logger, logged)
		}
	}()
	// Expiry is evaluated lazily, against receive times: no clock read and
	// no timer per exporter.
	dg.expireHeld()
	e.sweepTemplates(dg.received)
	dg.decode(payload)
	dg.finish()
	return dg.out, nil // both set again by the deferred function
}

// exporter returns the state of the exporter at addr, creating it; nil when
// it is new and maxExporters are known.
func (d *Decoder) exporter(addr netip.Addr) *exporter {
	d.mu.RLock()
	e, ok := d.exporters[addr]
	d.mu.RUnlock()
	if ok {
		return e
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.exporters[addr]; ok {
		return e
	}
	if len(d.exporters) >= d.maxExporters {
		return nil
	}
	e = newExporter(addr, &d.limits, &d.generation, d.override[addr])
	d.exporters[addr] = e
	return e
}

// refuse counts a datagram from a source past MaxExporters, and logs it at
// most once per logInterval of receive time for the whole decoder.
func (d *Decoder) refuse(src netip.Addr, received time.Time) {
	d.refused.Add(1)
	now, last := received.UnixMilli(), d.refusedLog.Load()
	if since := now - last; since < logInterval.Milliseconds() && since > -logInterval.Milliseconds() ||
		!d.refusedLog.CompareAndSwap(last, now) {
		return
	}
	d.logger.Warn("datagram from a new exporter dropped: too many exporters (further ones muted for a minute)",
		"exporter", src, "max_exporters", d.maxExporters, "dropped", d.refused.Load())
}

// ExporterLimitDrops is the number of datagrams dropped because they came
// from a new source while MaxExporters exporters were known.
func (d *Decoder) ExporterLimitDrops() uint64 { return d.refused.Load() }

// datagram is the state of one Decode call. It lives on the stack and is
// only touched under the exporter's mutex.
type datagram struct {
	e          *exporter
	out        []flow.Record
	exporter   flow.Addr
	received   int64 // unix ms; while releasing held data, the held datagram's
	receivedAt time.Time
	proto      flow.Protocol
	records    int // read so far, against limits.maxRecords
	reasons    reasonSet
	errs       []error // returned
	logErr     error   // a limit hit: counted and logged, not returned

	// newTemplate is set when a template was added or changed: held data may
	// now be decodable.
	newTemplate bool
	// pending are copies of this datagram's data sets (set headers included)
	// whose template is unknown, with the header they need; held at the end
	// of the datagram unless a template it brought decodes them first.
	pending       []byte
	pendingHeader nfHeader
}

// decode dispatches on the version found in the first bytes.
func (dg *datagram) decode(p []byte) {
	if len(p) < 4 {
		dg.fail(fmt.Errorf("%w: %d bytes, too short for a header", ErrMalformed, len(p)))
		return
	}
	// sFlow's version is a 32-bit 5 (00 00 00 05); NetFlow and IPFIX use a
	// 16-bit version, so 00 05 .. is NetFlow v5 and the two never clash.
	if binary.BigEndian.Uint32(p) == 5 {
		dg.proto = flow.ProtoSFlowV5
		dg.decodeSFlow(p)
		return
	}
	switch version := binary.BigEndian.Uint16(p); version {
	case 5:
		dg.proto = flow.ProtoNetFlowV5
		dg.decodeNetFlowV5(p)
	case 9:
		dg.proto = flow.ProtoNetFlowV9
		dg.decodeNetFlow(p, 9)
	case 10:
		dg.proto = flow.ProtoIPFIX
		dg.decodeNetFlow(p, 10)
	default:
		dg.fail(fmt.Errorf("%w: %d", ErrUnknownVersion, version))
	}
}

// fail records an error of the datagram; each reason is kept once.
func (dg *datagram) fail(err error) {
	r := reasonOf(err)
	if dg.reasons.has(r) {
		return
	}
	dg.reasons.add(r)
	if r >= reasonTemplateLimit { // a limit: counted and logged, but the datagram itself decoded
		if dg.logErr == nil {
			dg.logErr = err
		}
		return
	}
	dg.errs = append(dg.errs, err)
}

// sampling returns the rate to apply given the rate the export carries
// (0 = none) and where it came from, and records it in the exporter's stats.
func (dg *datagram) sampling(rate uint32, source string) uint32 {
	e := dg.e
	switch {
	case e.override != 0:
		rate, source = e.override, sourceOverride
	case rate == 0:
		rate, source = 1, sourceNone
	}
	e.samplingRate, e.samplingSource = rate, source
	return rate
}

// Error reasons, as counted in ExporterStats.Errors.
type reason uint8

// The limits come last: fail keeps them out of the returned errors.
const (
	reasonMalformed reason = iota
	reasonTemplateUnknown
	reasonUnknownVersion
	reasonTemplateLimit
	reasonRecordLimit
	reasonFieldLength
	reasonCount
)

var reasonNames = [reasonCount]string{
	reasonMalformed:       "malformed",
	reasonTemplateUnknown: "template_unknown",
	reasonUnknownVersion:  "unknown_version",
	reasonTemplateLimit:   "template_limit",
	reasonRecordLimit:     "record_limit",
	reasonFieldLength:     "field_length",
}

// Limits hit, counted (reasons above) and logged but not returned.
var (
	errRecordLimit = errors.New("too many records in one datagram")
	errFieldLength = errors.New("field too long")
)

func reasonOf(err error) reason {
	switch {
	case errors.Is(err, ErrTemplateUnknown):
		return reasonTemplateUnknown
	case errors.Is(err, ErrUnknownVersion):
		return reasonUnknownVersion
	case errors.Is(err, errTemplateLimit):
		return reasonTemplateLimit
	case errors.Is(err, errRecordLimit):
		return reasonRecordLimit
	case errors.Is(err, errFieldLength):
		return reasonFieldLength
	}
	return reasonMalformed
}

// record counts one record read and reports whether it is within
// limits.maxRecords; past it, the rest of the datagram is skipped.
func (dg *datagram) record() bool {
	if dg.records >= dg.e.limits.maxRecords {
		dg.fail(fmt.Errorf("%w: more than %d", errRecordLimit, dg.e.limits.maxRecords))
		return false
	}
	dg.records++
	return true
}

type reasonSet uint8

func (s reasonSet) has(r reason) bool { return s&(1<<r) != 0 }
func (s *reasonSet) add(r reason)     { *s |= 1 << r }

// uintBE decodes a big-endian unsigned integer of 0 to 8 bytes; longer
// values keep their low 8 bytes, as NetFlow reduced-size encoding only
// ever shortens integers.
func uintBE(b []byte) uint64 {
	if len(b) > 8 {
		b = b[len(b)-8:]
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
