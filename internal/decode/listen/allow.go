package listen

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// normalizeAllow validates the allow-list and puts its prefixes in the form
// the per-datagram check compares against: masked, and IPv4-mapped IPv6
// prefixes as IPv4, since datagram sources are unmapped.
func normalizeAllow(in []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("listen: allow: invalid prefix %q", p)
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("listen: allow: %s is wider than the IPv4-mapped range", p)
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// allowed tells whether a source may send. A linear scan: the list is tens
// of prefixes at most, and Contains neither allocates nor locks.
func allowed(prefixes []netip.Prefix, src netip.Addr) bool {
	src = src.WithZone("") // a zoned address never matches a prefix
	for _, p := range prefixes {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// filter removes the datagrams whose source is not allowed from batch
// (in place) and accounts for them; it returns the kept datagrams and their bytes.
func (r *reader) filter(now time.Time, batch []Datagram, nbytes uint64) ([]Datagram, uint64) {
	kept := batch[:0]
	srcs := r.rejectedSrcs[:0]
	for _, d := range batch {
		if allowed(r.l.cfg.Allow, d.Src.Addr()) {
			kept = append(kept, d)
			continue
		}
		nbytes -= uint64(len(d.Payload))
		srcs = append(srcs, d.Src.Addr())
	}
	if len(srcs) == 0 {
		return kept, nbytes
	}
	r.rejected.Add(uint64(len(srcs)))
	if r.l.offenders != nil {
		r.l.offenders.add(now, srcs)
	}
	if r.l.rejectLog.allow(now) {
		r.l.log.Warn("datagrams from a source outside the allow-list dropped (logged once a minute; see /api/v1/rejected)",
			"source", srcs[0])
	}
	return kept, nbytes
}

// DefaultOffenders is how many rejected sources an Offenders keeps by default.
const DefaultOffenders = 64

// Offender is one source of rejected datagrams.
type Offender struct {
	Source netip.Addr
	// Datagrams is an upper bound of what the source sent: the true count is
	// between Datagrams-Error and Datagrams.
	Datagrams uint64
	Error     uint64
	LastSeen  time.Time
}

// Offenders keeps the sources that sent the most rejected datagrams in fixed
// memory, whatever the number of (possibly spoofed) sources, with the
// Space-Saving algorithm (Metwally et al., 2005): k counters; a new source
// takes over the smallest one and inherits its count as its error. Any source
// that sent more than total/k datagrams is guaranteed to be listed.
// It is shared by the listeners and safe for concurrent use; readers lock it
// once per batch, and only for batches with rejected datagrams.
type Offenders struct {
	mu      sync.Mutex
	entries []Offender // at most cap(entries), unordered
	total   uint64
}

// NewOffenders returns a table of k sources (DefaultOffenders if k <= 0).
func NewOffenders(k int) *Offenders {
	if k <= 0 {
		k = DefaultOffenders
	}
	return &Offenders{entries: make([]Offender, 0, k)}
}

// add counts one rejected datagram per element of srcs.
func (o *Offenders) add(now time.Time, srcs []netip.Addr) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.total += uint64(len(srcs))
	for _, src := range srcs {
		o.addOne(now, src)
	}
}

func (o *Offenders) addOne(now time.Time, src netip.Addr) {
	for i := range o.entries {
		if e := &o.entries[i]; e.Source == src {
			e.Datagrams++
			e.LastSeen = now
			return
		}
	}
	if len(o.entries) < cap(o.entries) {
		o.entries = append(o.entries, Offender{Source: src, Datagrams: 1, LastSeen: now})
		return
	}
	m := 0
	for i := range o.entries {
		if o.entries[i].Datagrams < o.entries[m].Datagrams {
			m = i
		}
	}
	floor := o.entries[m].Datagrams
	o.entries[m] = Offender{Source: src, Datagrams: floor + 1, Error: floor, LastSeen: now}
}

// Snapshot returns the total of rejected datagrams and the sources kept,
// most datagrams first.
func (o *Offenders) Snapshot() (total uint64, top []Offender) {
	o.mu.Lock()
	top = slices.Clone(o.entries)
	total = o.total
	o.mu.Unlock()
	slices.SortFunc(top, func(a, b Offender) int {
		if c := cmp.Compare(b.Datagrams, a.Datagrams); c != 0 {
			return c
		}
		return a.Source.Compare(b.Source)
	})
	return total, top
}
