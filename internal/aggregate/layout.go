package aggregate

import (
	"slices"

	"github.com/tmsd/tmsd/internal/topn"
)

// How a flow becomes table entries (docs/ENGINE.md). A flow's values are
// first reduced to uint64 fields: addresses to 32 bits (IPv4 as itself, IPv6
// and the reserved 240.0.0.0/4 through a per-minute dictionary), ports with
// their protocol, interfaces and (exporter, protocol) partitions to dense ids.
// Each table then keys an entry by one scope field and one value field,
// scope<<valueBits | value, so counting a flow in a table is one probe of a
// 32-byte slot, whatever its dimension or scope. The tables of a kind hold
// every scope of the kind: a table per (kind, dimension), not per scope.
//
//   - partition tables, scoped by (exporter, protocol): the whole network,
//     each exporter and each protocol are unions of partitions, merged when
//     read; exporter and proto are constant in a partition, not counted.
//   - interface tables, scoped by (exporter, ifIndex), one set per direction.
//   - drill-down tables, scoped by application: an application's hosts and
//     ports; an address's applications are the same entries read by address.
//   - the peer table: the unordered address pair of each flow.
//   - the whole network's port tables, every port exact (nfdump's -s port);
//     every other port table counts ports 32768-65535, clients' ports, as
//     one value per protocol (topn.PortRangeKey): one of a kind per
//     connection, they held a key each in every interface and application
//     they crossed, 4 of the 5.3M keys of BenchmarkAdd's 8M flows, and cost
//     2,260 against 990 cpu-ns/flow.
//   - totals: one table per scope kind, keyed by the scope alone, never compacted.
//
// The derived dimensions (ip, port, country, as: a flow under both ends) are
// the union of their source and destination tables, merged when read.

// field is one of a flow's values as tables key it.
type field uint8

const (
	fZero field = iota // always 0: the scope of unscoped tables, the value of totals
	fPart              // partition id: (exporter, protocol)
	fIn                // input interface id: (exporter, ifIndex)
	fOut               // output interface id
	fApp               // application id
	fProto
	fSrc // address value (addrValue)
	fDst
	fSrcPort // port<<8 | protocol
	fDstPort
	fSrcCC // country: two ASCII letters
	fDstCC
	fSrcAS
	fDstAS
	fPeer // lower address value << 32 | higher
	// ports as scoped tables count them: 32768-65535 as one value (topn.PortRangeKey)
	fSrcPortS
	fDstPortS
	numFields
)

// scopeKind is what a table's scope field names.
type scopeKind uint8

const (
	scAll scopeKind = iota + 1 // the whole network alone: its exact port tables
	scPart
	scIn
	scOut
	scApp  // drill-down: an application's flows
	scNone // the peer table
)

// spec is one table of a minute: its scope, the dimension its values are
// of, and the fields of its key.
type spec struct {
	kind   scopeKind
	dim    topn.Dim // 0: the totals of the kind's scopes
	scope  field
	value  field
	weight int // cost per flow, to balance the shards: ~ns/flow / 5 in BenchmarkAdd/default
}

// elides says whether a table leaves out value 0, unknown: the countries and
// ASes, which are unknown for every flow until enrichment names them. Its
// zero row is then the scope's total less what the table counted
// (table.nonzero), kept exact; counting it cost BenchmarkAdd ~180 of 990
// cpu-ns/flow for a row it can derive. The totals table of the kind is in the
// same shard (assign).
//
// These tables are also derived, not counted per flow: an address has one
// country and one AS, so a scope's country and AS rows are its address
// table's rows summed by what the address is (minuteAgg.ends, fold). Counted
// per flow, the twelve tables of countries and ASes held real keys once
// enrichment named them and cost BenchmarkAdd/enriched 2,040-2,130 against
// 1,080-1,160 cpu-ns/flow without them.
func (s spec) elides() bool {
	switch s.dim {
	case topn.DimSrcCountry, topn.DimDstCountry, topn.DimSrcAS, topn.DimDstAS:
		return true
	}
	return false
}

// specs are every table a minute may have, in a fixed order (their index is
// stored in checkpoints: append only).
var specs = []spec{
	{scPart, 0, fPart, fZero, 2},
	{scPart, topn.DimApp, fPart, fApp, 2},
	{scPart, topn.DimSrcIP, fPart, fSrc, 7},
	{scPart, topn.DimDstIP, fPart, fDst, 7},
	{scPart, topn.DimSrcPort, fPart, fSrcPortS, 3},
	{scPart, topn.DimDstPort, fPart, fDstPortS, 3},
	{scPart, topn.DimInIf, fPart, fIn, 4},
	{scPart, topn.DimOutIf, fPart, fOut, 3},
	{scPart, topn.DimSrcCountry, fPart, fSrcCC, 1},
	{scPart, topn.DimDstCountry, fPart, fDstCC, 1},
	{scPart, topn.DimSrcAS, fPart, fSrcAS, 1},
	{scPart, topn.DimDstAS, fPart, fDstAS, 1},

	{scIn, 0, fIn, fZero, 2},
	{scIn, topn.DimApp, fIn, fApp, 3},
	{scIn, topn.DimProto, fIn, fProto, 3},
	{scIn, topn.DimSrcIP, fIn, fSrc, 11},
	{scIn, topn.DimDstIP, fIn, fDst, 11},
	{scIn, topn.DimSrcPort, fIn, fSrcPortS, 5},
	{scIn, topn.DimDstPort, fIn, fDstPortS, 5},
	{scIn, topn.DimOutIf, fIn, fOut, 5},
	{scIn, topn.DimSrcCountry, fIn, fSrcCC, 1},
	{scIn, topn.DimDstCountry, fIn, fDstCC, 1},
	{scIn, topn.DimSrcAS, fIn, fSrcAS, 1},
	{scIn, topn.DimDstAS, fIn, fDstAS, 1},

	{scOut, 0, fOut, fZero, 2},
	{scOut, topn.DimApp, fOut, fApp, 3},
	{scOut, topn.DimProto, fOut, fProto, 2},
	{scOut, topn.DimSrcIP, fOut, fSrc, 11},
	{scOut, topn.DimDstIP, fOut, fDst, 11},
	{scOut, topn.DimSrcPort, fOut, fSrcPortS, 5},
	{scOut, topn.DimDstPort, fOut, fDstPortS, 5},
	{scOut, topn.DimInIf, fOut, fIn, 5},
	{scOut, topn.DimSrcCountry, fOut, fSrcCC, 1},
	{scOut, topn.DimDstCountry, fOut, fDstCC, 1},
	{scOut, topn.DimSrcAS, fOut, fSrcAS, 1},
	{scOut, topn.DimDstAS, fOut, fDstAS, 1},

	{scApp, topn.DimSrcIP, fApp, fSrc, 6},
	{scApp, topn.DimDstIP, fApp, fDst, 6},
	{scApp, topn.DimSrcPort, fApp, fSrcPortS, 2},
	{scApp, topn.DimDstPort, fApp, fDstPortS, 2},
	{scNone, topn.DimPeer, fZero, fPeer, 12},

	{scAll, topn.DimSrcPort, fZero, fSrcPort, 6},
	{scAll, topn.DimDstPort, fZero, fDstPort, 6},
}

const numSpecs = 43

// specIndex finds the table of a kind and dimension (0: its totals); -1: none.
func specIndex(k scopeKind, d topn.Dim) int {
	for i, s := range specs {
		if s.kind == k && s.dim == d {
			return i
		}
	}
	return -1
}

// spills[i], for an address table of a kind with countries and ASes, are
// the country and AS tables of the same end, which fold its rows; else nil.
var spills = func() (out [numSpecs][]int) {
	for i, s := range specs {
		var cc, as topn.Dim
		switch s.dim {
		case topn.DimSrcIP:
			cc, as = topn.DimSrcCountry, topn.DimSrcAS
		case topn.DimDstIP:
			cc, as = topn.DimDstCountry, topn.DimDstAS
		default:
			continue
		}
		if c, a := specIndex(s.kind, cc), specIndex(s.kind, as); c >= 0 && a >= 0 {
			out[i] = []int{c, a}
		}
	}
	return out
}()

// enabled says whether the configuration keeps the tables of spec s.
func (cfg *Configuration) enabled(s spec) bool {
	switch s.kind {
	case scIn, scOut:
		return cfg.ScopeInterface
	case scApp, scNone:
		return cfg.DrillDowns > 0
	case scAll:
		return true
	}
	return true
}

// pairOf is the either-side dimension a dimension is one end of (0: none):
// the two ends' tables are read together, so they stay in one shard.
func pairOf(d topn.Dim) topn.Dim {
	switch d {
	case topn.DimSrcIP, topn.DimDstIP:
		return topn.DimIP
	case topn.DimSrcPort, topn.DimDstPort:
		return topn.DimPort
	case topn.DimSrcCountry, topn.DimDstCountry:
		return topn.DimCountry
	case topn.DimSrcAS, topn.DimDstAS:
		return topn.DimAS
	}
	return 0
}

// assign gives each enabled table to a shard, so that every table has one
// writer and the shards share the cost per flow: greedily, heaviest unit
// first (a table, or the two ends of an either-side dimension), to the
// shard with the least weight. The same configuration gives the same
// assignment every run.
func assign(cfg *Configuration, shards int) [][]int {
	type unit struct {
		specs  []int
		weight int
	}
	var units []unit
	at := map[[2]int]int{} // (kind, pair) -> unit
	for i, s := range specs {
		if !cfg.enabled(s) {
			continue
		}
		p := pairOf(s.dim)
		if s.elides() || s.dim == 0 || spills[i] != nil {
			// With the kind's totals, which they read, and the address
			// tables they are folded from.
			p = topn.DimCountry
		}
		if p != 0 {
			key := [2]int{int(s.kind), int(p)}
			if u, ok := at[key]; ok {
				units[u].specs = append(units[u].specs, i)
				units[u].weight += s.weight
				continue
			}
			at[key] = len(units)
		}
		units = append(units, unit{specs: []int{i}, weight: s.weight})
	}
	// Stable by weight, heaviest first.
	for i := 1; i < len(units); i++ {
		for j := i; j > 0 && units[j].weight > units[j-1].weight; j-- {
			units[j], units[j-1] = units[j-1], units[j]
		}
	}
	out := make([][]int, shards)
	load := make([]int, shards)
	for _, u := range units {
		best := 0
		for s := range load {
			if load[s] < load[best] {
				best = s
			}
		}
		out[best] = append(out[best], u.specs...)
		load[best] += u.weight
	}
	for _, own := range out {
		slices.Sort(own)
	}
	return out
}
