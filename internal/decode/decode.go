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
	"time"

	"github.com/tmsd/tmsd/internal/flow"
)

// Errors returned (wrapped) by Decode. Check them with errors.Is.
var (
	// ErrMalformed means the datagram is truncated or inconsistent.
	ErrMalformed = errors.New("malformed datagram")
	// ErrTemplateUnknown means a NetFlow v9/IPFIX data set references a template not (yet) received.
	ErrTemplateUnknown = errors.New("unknown template")
	// ErrUnknownVersion means the datagram is none of NetFlow v5/v9, IPFIX, sFlow v5.
	ErrUnknownVersion = errors.New("unknown export version")

	// errPanic marks a recovered panic, so tests can tell a bug from bad input.
	errPanic = errors.New("decoder panic")
)

// Configuration of the decoder.
type Configuration struct {
	// SamplingOverride forces a sampling rate per exporter address (IPv4 or
	// IPv6 → rate). 0 or absent means use the rate the export carries.
	SamplingOverride map[netip.Addr]uint32
	// MaxTemplatesPerExporter bounds memory per exporter; further templates
	// are refused and counted under the "template_limit" error reason.
	MaxTemplatesPerExporter int
}

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{MaxTemplatesPerExporter: 1024}
}

// Decoder decodes datagrams into flow records. It is safe for concurrent use.
type Decoder struct {
	maxTemplates int
	override     map[netip.Addr]uint32 // keys unmapped
	logger       *slog.Logger

	mu sync.RWMutex
	// exporters is unbounded: one entry per source IP ever seen. Listeners
	// are expected to be reachable by known exporters only.
	exporters map[netip.Addr]*exporter
}

// New validates the configuration and returns a decoder.
func New(cfg Configuration) (*Decoder, error) {
	switch {
	case cfg.MaxTemplatesPerExporter < 0:
		return nil, fmt.Errorf("decode: MaxTemplatesPerExporter %d is negative", cfg.MaxTemplatesPerExporter)
	case cfg.MaxTemplatesPerExporter == 0:
		cfg.MaxTemplatesPerExporter = DefaultConfiguration().MaxTemplatesPerExporter
	}
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
		maxTemplates: cfg.MaxTemplatesPerExporter,
		override:     override,
		logger:       slog.Default().With("component", "decode"),
		exporters:    make(map[netip.Addr]*exporter),
	}, nil
}

// Decode decodes one datagram from exporter src, received at received,
// appending records to out and returning it. On error it returns the records
// decoded so far and an error wrapping ErrMalformed, ErrTemplateUnknown or
// ErrUnknownVersion (several, joined, if the datagram had several problems);
// each reason is also counted once in the exporter's stats.
func (d *Decoder) Decode(src netip.Addr, payload []byte, received time.Time, out []flow.Record) (records []flow.Record, err error) {
	src = src.Unmap()
	e := d.exporter(src)
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
		}
		records = dg.out // also after a panic: the records appended before it are whole
		e.account(&dg, len(records)-start, received)
		switch len(dg.errs) {
		case 0:
		case 1:
			err = dg.errs[0]
		default:
			err = errors.Join(dg.errs...)
		}
		if logged := cmp.Or(err, dg.limitErr); logged != nil {
			e.logThrottled(d.logger, logged)
		}
	}()
	dg.decode(payload)
	return dg.out, nil // both set again by the deferred function
}

// exporter returns the state of the exporter at addr, creating it.
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
	e = newExporter(addr, d.maxTemplates, d.override[addr])
	d.exporters[addr] = e
	return e
}

// datagram is the state of one Decode call. It lives on the stack and is
// only touched under the exporter's mutex.
type datagram struct {
	e          *exporter
	out        []flow.Record
	exporter   flow.Addr
	received   int64 // unix ms
	receivedAt time.Time
	proto      flow.Protocol
	reasons    reasonSet
	errs       []error // returned
	limitErr   error   // a refused template: counted and logged, not returned
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
	if r == reasonTemplateLimit { // counted and logged, but the datagram itself decoded
		dg.limitErr = err
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

const (
	reasonMalformed reason = iota
	reasonTemplateUnknown
	reasonUnknownVersion
	reasonTemplateLimit
	reasonCount
)

var reasonNames = [reasonCount]string{
	reasonMalformed:       "malformed",
	reasonTemplateUnknown: "template_unknown",
	reasonUnknownVersion:  "unknown_version",
	reasonTemplateLimit:   "template_limit",
}

func reasonOf(err error) reason {
	switch {
	case errors.Is(err, ErrTemplateUnknown):
		return reasonTemplateUnknown
	case errors.Is(err, ErrUnknownVersion):
		return reasonUnknownVersion
	case errors.Is(err, errTemplateLimit):
		return reasonTemplateLimit
	}
	return reasonMalformed
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
