package flowgen

import (
	"cmp"
	"slices"
)

// Ephemeral port rotation, the backbone profile's answer to a pool of
// datagrams sent over and over: the k-th send of a datagram writes each
// client port as its drawn value + k/repeat, mod ephRange (within EphemeralLo..
// EphemeralHi). A record sent n times thus carries n/repeat consecutive client
// ports, as a client opening connection after connection does, so its
// (exporter, interfaces, 5-tuple) repeats only repeat times (until it has
// been sent ephRange×repeat times: 37 minutes at 3M flows/s from 4
// exporters), while the send is one add and a 2-byte store per record.
// Being deterministic, it leaves the truth exact: ephTally counts the ports
// each record went through, and tupleStats the distinct tuples per minute.

// rotation is how ephemeral ports move: repeat sends per port, 0 = never
// (the pool profile).
type rotation struct{ repeat uint64 }

func (r rotation) on() bool { return r.repeat > 0 }

// step is the rotation of a datagram's send number s.
func (r rotation) step(s uint64) uint32 {
	if r.repeat > 1 {
		s /= r.repeat
	}
	return uint32(s % ephRange)
}

// ephSlots lists the rotated ports of d, once it is encoded.
func ephSlots(c codec, d *datagram) {
	d.eph = d.eph[:0]
	for i := range d.recs {
		f := &d.recs[i]
		switch f.eph {
		case ephSrc:
			d.eph = append(d.eph, ephSlot{off: uint16(c.portsAt(d, i)), base: f.srcPort - EphemeralLo})
		case ephDst:
			d.eph = append(d.eph, ephSlot{off: uint16(c.portsAt(d, i) + 2), base: f.dstPort - EphemeralLo})
		}
	}
	d.step = 0 // as encoded
}

// rotate writes d's ephemeral ports at step. Idempotent, so a datagram
// patched for a send the kernel refused is simply patched again.
func rotate(d *datagram, step uint32) {
	if step == d.step {
		return
	}
	b := d.buf
	for _, e := range d.eph {
		v := uint32(e.base) + step
		if v >= ephRange {
			v -= ephRange
		}
		v += EphemeralLo
		b[e.off], b[e.off+1] = byte(v>>8), byte(v)
	}
	d.step = step
}

// ephTally counts rotated ports exactly: per side (source, destination) and
// protocol (TCP, UDP) a difference array over the ephRange offsets, since a
// record's sends visit consecutive offsets, repeat sends each.
type ephTally struct {
	diff [2][2]*[ephRange + 1]Counters
}

func scaled(c Counters, k uint64) Counters {
	return Counters{Bytes: c.Bytes * k, Packets: c.Packets * k, Flows: c.Flows * k}
}

// addRange adds w to offsets [start, start+n) mod ephRange, n ≤ ephRange.
// Counters wrap mod 2^64 in between; the prefix sums come out exact.
func addRange(d *[ephRange + 1]Counters, start, n uint64, w Counters) {
	sub := func(c *Counters) {
		c.Bytes -= w.Bytes
		c.Packets -= w.Packets
		c.Flows -= w.Flows
	}
	end := start + n
	d[start].add(&w)
	if end <= ephRange {
		sub(&d[end])
		return
	}
	sub(&d[ephRange])
	d[0].add(&w)
	sub(&d[end-ephRange])
}

// add counts the n sends (numbers 0..n-1) of record f, each worth one.
func (t *ephTally) add(f *flowRec, n uint64, rot rotation, one Counters) {
	side, base := 0, uint64(f.srcPort-EphemeralLo)
	if f.eph == ephDst {
		side, base = 1, uint64(f.dstPort-EphemeralLo)
	}
	proto := 0
	if f.proto == protoUDP {
		proto = 1
	}
	d := t.diff[side][proto]
	if d == nil {
		d = new([ephRange + 1]Counters)
		t.diff[side][proto] = d
	}
	k := rot.repeat
	q, r := n/k, n%k // q ports with k sends each, then one with r
	if full := q / ephRange; full > 0 {
		addRange(d, 0, ephRange, scaled(one, k*full))
	}
	rem := q % ephRange
	addRange(d, base, rem, scaled(one, k))
	if r > 0 {
		addRange(d, (base+rem)%ephRange, 1, scaled(one, r))
	}
}

// each calls fn with every rotated port that was sent and its counters.
func (t *ephTally) each(fn func(srcSide bool, port uint16, proto uint8, c *Counters)) {
	for side := range t.diff {
		for p, proto := range []uint8{protoTCP, protoUDP} {
			d := t.diff[side][p]
			if d == nil {
				continue
			}
			var run Counters
			for o := range ephRange {
				run.add(&d[o])
				if run.Flows != 0 {
					c := run
					fn(side == 0, uint16(EphemeralLo+o), proto, &c)
				}
			}
		}
	}
}

// TupleStats says how often the run's flows repeat their tuple, the key a
// collector aggregating by full tuple first would absorb repeats on.
type TupleStats struct {
	// Minutes is the number of calendar minutes (of the flows' end times)
	// the run sent in.
	Minutes int `json:"minutes"`
	// Distinct is the sum over those minutes of the distinct (exporter,
	// input and output interface, source and destination address, ports,
	// protocol) tuples sent in the minute.
	Distinct uint64 `json:"distinct"`
	// FlowsPerTuple is flows sent / Distinct: 1 when no flow shares its
	// tuple with another of the same minute.
	//
	// Both are exact as long as no service port lies in the ephemeral
	// range (none of DefaultPorts does): a client-to-server and a
	// server-to-client record are then never counted as one tuple.
	FlowsPerTuple float64 `json:"flows_per_tuple"`
}

// minuteMark is an exporter's send counts when a calendar minute began.
type minuteMark struct {
	minute int64 // unix minutes
	counts []uint64
}

// tupleEnt is one record's sends in one minute: the tuple without its
// rotated port (hi, lo, ports), and the rotated port's offsets [start,
// start+n) mod ephRange; n = 1 when the record's ports do not rotate.
type tupleEnt struct {
	hi, lo   uint64
	ports    uint32
	start, n uint32
}

func tupleEntry(f *flowRec, from, to uint64, rot rotation) tupleEnt {
	e := tupleEnt{
		lo: uint64(f.src)<<40 | uint64(f.dst)<<16,
		n:  1,
	}
	v6 := uint64(0)
	if f.v6 {
		v6 = 1
	}
	side := uint64(ephNone)
	if rot.on() {
		side = uint64(f.eph)
	}
	e.hi = uint64(f.proto)<<48 | side<<46 | v6<<45 | uint64(f.inIf)<<16 | uint64(f.outIf)
	switch side {
	case ephNone:
		e.ports = uint32(f.srcPort)<<16 | uint32(f.dstPort)
		return e
	case ephSrc:
		e.ports = uint32(f.dstPort)
		e.start = uint32(f.srcPort - EphemeralLo)
	case ephDst:
		e.ports = uint32(f.srcPort)
		e.start = uint32(f.dstPort - EphemeralLo)
	}
	s0, s1 := from/rot.repeat, (to-1)/rot.repeat
	if s1-s0+1 >= ephRange {
		e.start, e.n = 0, ephRange
		return e
	}
	e.start = uint32((uint64(e.start) + s0%ephRange) % ephRange)
	e.n = uint32(s1 - s0 + 1)
	return e
}

// countDistinct is the number of distinct tuples of ents (reordered): the
// union of the rotated ports' cyclic intervals of each tuple.
func countDistinct(ents []tupleEnt) uint64 {
	slices.SortFunc(ents, func(a, b tupleEnt) int {
		return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo), cmp.Compare(a.ports, b.ports), cmp.Compare(a.start, b.start))
	})
	var (
		total uint64
		iv    [][2]uint32
	)
	for i := 0; i < len(ents); {
		j := i + 1
		for j < len(ents) && ents[j].hi == ents[i].hi && ents[j].lo == ents[i].lo && ents[j].ports == ents[i].ports {
			j++
		}
		if j == i+1 {
			total += uint64(ents[i].n)
			i = j
			continue
		}
		iv = iv[:0]
		for _, e := range ents[i:j] {
			if end := e.start + e.n; end <= ephRange {
				iv = append(iv, [2]uint32{e.start, end})
			} else {
				iv = append(iv, [2]uint32{e.start, ephRange}, [2]uint32{0, end - ephRange})
			}
		}
		slices.SortFunc(iv, func(a, b [2]uint32) int { return cmp.Compare(a[0], b[0]) })
		cur := iv[0]
		for _, v := range iv[1:] {
			if v[0] <= cur[1] {
				cur[1] = max(cur[1], v[1])
				continue
			}
			total += uint64(cur[1] - cur[0])
			cur = v
		}
		total += uint64(cur[1] - cur[0])
		i = j
	}
	return total
}

// tupleStats computes the run's TupleStats from each exporter's pool and
// per-minute send counts.
func tupleStats(exps []*exporter, rot rotation) *TupleStats {
	st := &TupleStats{}
	minutes := map[int64]bool{}
	var (
		flows uint64
		ents  []tupleEnt
	)
	for _, x := range exps {
		if x == nil {
			continue
		}
		for m, mark := range x.marks {
			minutes[mark.minute] = true
			last := m == len(x.marks)-1
			to := x.counts
			if !last {
				to = x.marks[m+1].counts
			}
			ents = ents[:0]
			for j, d := range x.pool {
				a, b := mark.counts[j], to[j]
				for k := range d.recs {
					bk := b
					if last && j == x.partialPos && k < len(x.partial) {
						bk++ // the truncated last datagram: send number b of these records
					}
					if bk == a {
						continue
					}
					flows += bk - a
					ents = append(ents, tupleEntry(&d.recs[k], a, bk, rot))
				}
			}
			st.Distinct += countDistinct(ents)
		}
	}
	st.Minutes = len(minutes)
	if st.Distinct > 0 {
		st.FlowsPerTuple = float64(flows) / float64(st.Distinct)
	}
	return st
}
