package decode

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// The state a data datagram needs and an exporter only sends now and then
// (templates, options sampling rates, IPFIX systemInitTime) is saved in one
// blob, so that after a restart data decodes at once instead of after the
// next template refresh, 5 to 30 minutes later. The layout (docs/STORAGE.md)
// starts with a version byte and ends with a CRC-32C: Restore refuses what
// it does not know instead of guessing, and never panics on a corrupt blob.

// stateVersion is the layout State writes and Restore reads.
const stateVersion = 1

// Errors returned (wrapped) by Restore.
var (
	// ErrStateVersion means the blob was written by a version of tmsd with
	// another layout.
	ErrStateVersion = errors.New("unknown decoder state version")
	// ErrStateCorrupt means the blob is truncated or inconsistent.
	ErrStateCorrupt = errors.New("corrupt decoder state")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Generation counts the changes to what State returns. It only moves when
// a template, an options sampling rate or a systemInitTime is added,
// changed, withdrawn or expired: a saver compares it to the generation of
// its last save to skip writing the same state again.
func (d *Decoder) Generation() uint64 { return d.generation.Load() }

// State returns the templates, options sampling rates and IPFIX
// systemInitTimes of every exporter, encoded, and the generation they are
// at least as new as. Exporters with none of them (NetFlow v5, sFlow) are
// left out. The encoding is canonical: sorted, so equal state gives equal bytes.
func (d *Decoder) State() ([]byte, uint64) {
	generation := d.generation.Load()
	d.mu.RLock()
	exporters := slices.SortedFunc(maps.Values(d.exporters), func(a, b *exporter) int { return a.addr.Compare(b.addr) })
	d.mu.RUnlock()
	var body []byte
	n := 0
	for _, e := range exporters {
		var ok bool
		if body, ok = e.appendState(body); ok {
			n++
		}
	}
	b := binary.AppendUvarint([]byte{stateVersion}, uint64(n))
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), generation
}

// appendState appends the exporter's state, unless it has none.
func (e *exporter) appendState(b []byte) ([]byte, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	type keyed struct {
		key uint64
		t   *template
	}
	templates := make([]keyed, 0, len(e.templates.templates))
	for k, v := range e.templates.templates {
		if t, ok := v.(*template); ok {
			templates = append(templates, keyed{k, t})
		}
	}
	if len(templates) == 0 && len(e.samplers) == 0 && len(e.systemInit) == 0 {
		return b, false
	}
	slices.SortFunc(templates, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	addr := e.addr.AsSlice()
	b = append(b, byte(len(addr)))
	b = append(b, addr...)

	b = binary.AppendUvarint(b, uint64(len(templates)))
	for _, kt := range templates {
		t := kt.t
		b = append(b, byte(kt.key>>48))                          // version
		b = binary.BigEndian.AppendUint32(b, uint32(kt.key>>16)) // domain
		b = binary.BigEndian.AppendUint16(b, uint16(kt.key))     // template ID
		var flags byte
		if t.options {
			flags |= 1
		}
		b = append(b, flags)
		b = binary.AppendUvarint(b, uint64(t.scopes))
		b = binary.AppendUvarint(b, uint64(len(t.fields)))
		for _, f := range t.fields {
			id := f.id
			if f.enterprise {
				id |= 0x8000
			}
			b = binary.BigEndian.AppendUint16(b, id)
			b = binary.BigEndian.AppendUint16(b, f.length)
		}
	}

	samplers := slices.SortedFunc(maps.Keys(e.samplers), func(a, b samplerKey) int {
		return cmp.Or(cmp.Compare(a.version, b.version), cmp.Compare(a.domain, b.domain), cmp.Compare(a.sampler, b.sampler))
	})
	b = binary.AppendUvarint(b, uint64(len(samplers)))
	for _, k := range samplers {
		b = append(b, byte(k.version))
		b = binary.BigEndian.AppendUint32(b, k.domain)
		b = binary.AppendUvarint(b, k.sampler)
		b = binary.AppendUvarint(b, uint64(e.samplers[k]))
	}

	domains := slices.Sorted(maps.Keys(e.systemInit))
	b = binary.AppendUvarint(b, uint64(len(domains)))
	for _, domain := range domains {
		b = binary.BigEndian.AppendUint32(b, domain)
		b = binary.AppendVarint(b, e.systemInit[domain])
	}
	return b, true
}

// Minimum encoded sizes, to bound counts by the bytes left before allocating.
const (
	minExporterState = 1 + 4 + 3 // address length, IPv4, three empty counts
	minTemplateState = 1 + 4 + 2 + 1 + 1 + 1 + 4
	minSamplerState  = 1 + 4 + 1 + 1
	minInitState     = 4 + 1
)

// RestoreStats says what Restore brought back.
type RestoreStats struct {
	Exporters, Templates int
	// Skipped templates (or whole exporters) are valid but beyond the
	// configured limits: MaxExporters, MaxTemplatesPerExporter, MaxFieldLength.
	Skipped int
}

// Restore loads a blob written by State, before the decoder sees traffic.
// Templates get now as their last refresh: the clock of their expiry
// restarts, since the time the process was down says nothing about whether
// the exporter still uses them, and the exporter gets one full
// TemplateTimeout to announce them again. State already known (a template
// received before Restore) is kept. A blob of another version or a corrupt
// one is refused whole, with an error wrapping ErrStateVersion or
// ErrStateCorrupt, and nothing is restored.
func (d *Decoder) Restore(blob []byte, now time.Time) (RestoreStats, error) {
	exporters, err := parseState(blob)
	if err != nil {
		return RestoreStats{}, err
	}
	var st RestoreStats
	refreshed := now.UnixMilli()
	for _, es := range exporters {
		e := d.exporter(es.addr)
		if e == nil {
			st.Skipped += len(es.templates)
			continue
		}
		st.Exporters++
		e.mu.Lock()
		for _, ts := range es.templates {
			if _, err := e.templates.lookup(ts.version, ts.domain, ts.id); err == nil {
				continue
			}
			t := newTemplate(ts.fields, ts.scopes, ts.options, refreshed)
			if t.maxFixedLength() > e.limits.maxFieldLength ||
				e.templates.AddTemplate(ts.version, ts.domain, ts.id, t) != nil {
				st.Skipped++
				continue
			}
			st.Templates++
		}
		for k, rate := range es.samplers {
			if _, ok := e.samplers[k]; !ok && len(e.samplers) < maxSamplersPerExporter {
				e.samplers[k] = rate
			}
		}
		for domain, ms := range es.systemInit {
			if _, ok := e.systemInit[domain]; !ok && len(e.systemInit) < maxSamplersPerExporter {
				e.systemInit[domain] = ms
			}
		}
		e.mu.Unlock()
	}
	return st, nil
}

// exporterState is one exporter of a parsed blob.
type exporterState struct {
	addr       netip.Addr
	templates  []templateState
	samplers   map[samplerKey]uint32
	systemInit map[uint32]int64
}

type templateState struct {
	version uint16
	domain  uint32
	id      uint16
	options bool
	scopes  int
	fields  []templateField
}

// stateReader reads a blob; a short or bad read sets err and returns zeros,
// so a parser reads a whole structure and checks once.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrStateCorrupt}, args...)...)
	}
	r.b = nil
}

func (r *stateReader) bytes(n int) []byte {
	if len(r.b) < n {
		r.fail("truncated")
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *stateReader) u8() uint8   { return r.bytes(1)[0] }
func (r *stateReader) u16() uint16 { return binary.BigEndian.Uint16(r.bytes(2)) }
func (r *stateReader) u32() uint32 { return binary.BigEndian.Uint32(r.bytes(4)) }

func (r *stateReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of items of at least minSize bytes each, refusing
// one the bytes left cannot hold: a corrupt count must not size an allocation.
func (r *stateReader) count(minSize int, what string) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/minSize) {
		r.fail("%d %s in %d bytes", n, what, len(r.b))
		return 0
	}
	return int(n)
}

func parseState(blob []byte) ([]exporterState, error) {
	if len(blob) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrStateCorrupt)
	}
	if blob[0] != stateVersion {
		return nil, fmt.Errorf("%w: %d (this tmsd reads %d)", ErrStateVersion, blob[0], stateVersion)
	}
	if len(blob) < 1+1+4 {
		return nil, fmt.Errorf("%w: %d bytes", ErrStateCorrupt, len(blob))
	}
	body, sum := blob[:len(blob)-4], binary.LittleEndian.Uint32(blob[len(blob)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrStateCorrupt)
	}
	r := &stateReader{b: body[1:]}
	exporters := make([]exporterState, r.count(minExporterState, "exporters"))
	for i := range exporters {
		es := &exporters[i]
		addr, ok := netip.AddrFromSlice(r.bytes(int(r.u8())))
		if r.err == nil && (!ok || addr.Is4In6()) {
			r.fail("exporter %d: bad address", i)
		}
		es.addr = addr
		es.templates = make([]templateState, r.count(minTemplateState, "templates"))
		for j := range es.templates {
			ts := &es.templates[j]
			ts.version = uint16(r.u8())
			ts.domain = r.u32()
			ts.id = r.u16()
			flags := r.u8()
			ts.options = flags&1 != 0
			scopes := r.uvarint()
			ts.fields = make([]templateField, r.count(4, "fields"))
			for k := range ts.fields {
				id, length := r.u16(), r.u16()
				ts.fields[k] = templateField{id: id &^ 0x8000, length: length, enterprise: id&0x8000 != 0}
			}
			switch {
			case r.err != nil:
			case ts.version != 9 && ts.version != 10, ts.id < 256, flags&^1 != 0, len(ts.fields) == 0,
				scopes > uint64(len(ts.fields)), !ts.options && scopes != 0:
				r.fail("exporter %s: template %d of domain %d is not one the decoder keeps", addr, ts.id, ts.domain)
			case newTemplate(ts.fields, 0, false, 0).minLength == 0:
				r.fail("exporter %s: template %d of domain %d has only zero-length fields", addr, ts.id, ts.domain)
			}
			ts.scopes = int(scopes)
		}
		es.samplers = make(map[samplerKey]uint32)
		for range r.count(minSamplerState, "samplers") {
			k := samplerKey{version: uint16(r.u8()), domain: r.u32(), sampler: r.uvarint()}
			rate := r.uvarint()
			if r.err == nil && (k.version != 9 && k.version != 10 || rate == 0 || rate > 1<<32-1) {
				r.fail("exporter %s: bad sampler", addr)
			}
			es.samplers[k] = uint32(rate)
		}
		es.systemInit = make(map[uint32]int64)
		for range r.count(minInitState, "systemInitTimes") {
			domain := r.u32()
			es.systemInit[domain] = r.varint()
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d bytes after the last exporter", len(r.b))
	}
	return exporters, r.err
}
