package flowgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
)

// TopN is how many keys each top list of the truth keeps.
const TopN = 100

// Truth is exactly what a run sent, as a collector should report it: bytes
// and packets multiplied by the sampling rate, one flow per record (sFlow:
// per sample).
//
// Every counter and top list is exact, the port lists too under the
// backbone profile's client port rotation (rotate.go): a record's k-th
// send carries client port drawn+k/TupleRepeat (mod the ephemeral range),
// and the truth counts every port each record went through, so srcport and
// dstport hold service and client ports alike, as a collector sees them.
type Truth struct {
	Format        string    `json:"format"`
	Exporters     []string  `json:"exporters"`
	Sampling      uint32    `json:"sampling"`
	Workload      *Workload `json:"workload,omitempty"`
	Sent          Sent      `json:"sent"`
	ElapsedS      float64   `json:"elapsed_s"`
	RateFlowsPerS float64   `json:"rate_flows_per_s"`
	Total         Counters  `json:"total"`
	// Tuples says how often flows repeated their tuple within a minute
	// (not computed under Spread, which rewrites sources on every send).
	Tuples *TupleStats `json:"tuples,omitempty"`
	Top    *Top        `json:"top,omitempty"`
	// Spread is set when sources were spread (Config.Spread); the srcip
	// and ip top lists then hold the kept hosts only.
	Spread *SpreadTruth `json:"spread,omitempty"`
}

// Workload is the run's traffic model, as configured.
type Workload struct {
	Profile    string  `json:"profile"`
	Sources    int     `json:"sources"`      // source addresses (pool profile: hosts, both ends)
	DstHosts   int     `json:"destinations"` // destination addresses; 0: the sources' pool
	Zipf       float64 `json:"zipf"`
	Services   int     `json:"services"`
	Interfaces int     `json:"interfaces"` // a side
	Exporters  int     `json:"exporters"`
	Pool       int     `json:"pool"` // pre-built datagrams per exporter
	// Templates is how often v9/IPFIX templates are resent: "every 100
	// datagrams", "every 1s", "at the start"; empty for v5 and sFlow.
	Templates string `json:"templates,omitempty"`
	// TupleRepeat is the sends per client port; 0: ports never rotate.
	TupleRepeat int `json:"tuple_repeat"`
}

// workload describes cfg (defaults filled in).
func (cfg *Config) workload() *Workload {
	w := &Workload{Profile: cfg.Profile, Sources: cfg.Hosts, DstHosts: cfg.DstHosts, Zipf: cfg.Zipf,
		Services: len(cfg.Ports), Interfaces: Interfaces, Exporters: cfg.Exporters, Pool: cfg.Pool,
		TupleRepeat: int(cfg.rotation().repeat)}
	if cfg.Format == FormatV9 || cfg.Format == FormatIPFIX {
		switch {
		case cfg.TemplatesEveryDatagrams > 0:
			w.Templates = fmt.Sprintf("every %d datagrams", cfg.TemplatesEveryDatagrams)
		case cfg.TemplatesEvery > 0:
			w.Templates = "every " + cfg.TemplatesEvery.String()
		default:
			w.Templates = "at the start"
		}
	}
	return w
}

// SpreadTruth is what was sent from spread source addresses.
type SpreadTruth struct {
	Distinct uint64 `json:"distinct"` // addresses cycled through
	Keep     int    `json:"keep"`     // host ranks that kept their address
	Counters
}

// Sent counts what the kernel accepted. Datagrams include the template datagrams.
type Sent struct {
	Datagrams         uint64 `json:"datagrams"`
	Flows             uint64 `json:"flows"`
	TemplateDatagrams uint64 `json:"template_datagrams"`
}

// Counters are the totals of a key (or of everything).
type Counters struct {
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Flows   uint64 `json:"flows"`
}

// Entry is one key of a top list.
type Entry struct {
	Key string `json:"key"`
	Counters
}

// Top holds the top TopN keys by bytes of each dimension, ties broken by key.
// IP keys are netip.Addr.String(); ports "PORT/PROTO" (see PortKey);
// protocols the number. IP counts a flow under both of its ends.
type Top struct {
	SrcIP    []Entry `json:"srcip"`
	DstIP    []Entry `json:"dstip"`
	IP       []Entry `json:"ip"`
	DstPort  []Entry `json:"dstport"`
	SrcPort  []Entry `json:"srcport"`
	Proto    []Entry `json:"proto"`
	Exporter []Entry `json:"exporter"`
}

// WriteJSON writes the truth, indented, to path ("-" for stdout).
func (t *Truth) WriteJSON(path string) error {
	b, err := json.MarshalIndent(t, "", " ")
	if err != nil {
		return fmt.Errorf("truth: %w", err)
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(b)
	} else {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		return fmt.Errorf("truth: %w", err)
	}
	return nil
}

// SortEntries sorts by bytes, descending, then key: the truth's order.
func SortEntries(e []Entry) {
	slices.SortFunc(e, func(a, b Entry) int {
		if c := cmp.Compare(b.Bytes, a.Bytes); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
}

// tally aggregates records × send counts on small integer keys; keys become
// strings only for the entries of the final lists.
type tally struct {
	m        *model
	sampling uint64
	rot      rotation
	eph      ephTally // rotated client ports

	total            Counters
	spread           Counters
	src, dst, ip     map[uint64]*Counters // v6<<32 | host rank
	dstPort, srcPort map[uint32]*Counters // port<<8 | proto
	proto            [256]Counters
	exporter         []Counters
	exporterNames    []string
}

func newTally(m *model, sampling uint32, exporters []string, rot rotation) *tally {
	return &tally{
		m: m, sampling: uint64(sampling), rot: rot,
		src: map[uint64]*Counters{}, dst: map[uint64]*Counters{}, ip: map[uint64]*Counters{},
		dstPort: map[uint32]*Counters{}, srcPort: map[uint32]*Counters{},
		exporter: make([]Counters, len(exporters)), exporterNames: exporters,
	}
}

func bump[K comparable](m map[K]*Counters, k K, c *Counters) {
	v, ok := m[k]
	if !ok {
		v = &Counters{}
		m[k] = v
	}
	v.Bytes += c.Bytes
	v.Packets += c.Packets
	v.Flows += c.Flows
}

func (c *Counters) add(d *Counters) {
	c.Bytes += d.Bytes
	c.Packets += d.Packets
	c.Flows += d.Flows
}

// add counts record f of exporter exp, sent times times (send numbers 0..times-1).
func (t *tally) add(exp int, f *flowRec, times uint64) {
	if times == 0 {
		return
	}
	if t.rot.on() && f.eph != ephNone {
		one := Counters{Bytes: uint64(f.bytes) * t.sampling, Packets: uint64(f.packets) * t.sampling, Flows: 1}
		t.eph.add(f, times, t.rot, one)
	}
	// sFlow: a sample stands for rate packets of its frame's length.
	c := Counters{
		Bytes:   uint64(f.bytes) * t.sampling * times,
		Packets: uint64(f.packets) * t.sampling * times,
		Flows:   times,
	}
	t.total.add(&c)
	v6 := uint64(0)
	if f.v6 {
		v6 = 1 << 32
	}
	if f.spread {
		t.spread.add(&c)
	} else {
		bump(t.src, v6|uint64(f.src), &c)
		bump(t.ip, v6|uint64(f.src), &c)
	}
	bump(t.dst, v6|uint64(f.dst), &c)
	bump(t.ip, v6|uint64(f.dst), &c)
	rotated := t.rot.on() && f.eph != ephNone
	if !rotated || f.eph != ephDst {
		bump(t.dstPort, uint32(f.dstPort)<<8|uint32(f.proto), &c)
	}
	if !rotated || f.eph != ephSrc {
		bump(t.srcPort, uint32(f.srcPort)<<8|uint32(f.proto), &c)
	}
	t.proto[f.proto].add(&c)
	t.exporter[exp].add(&c)
}

func (t *tally) top() *Top {
	t.eph.each(func(srcSide bool, port uint16, proto uint8, c *Counters) {
		m := t.dstPort
		if srcSide {
			m = t.srcPort
		}
		bump(m, uint32(port)<<8|uint32(proto), c)
	})
	host := func(m map[uint64]*Counters) []Entry {
		return topOf(m, func(k uint64) string { return t.m.addr(uint32(k), k>>32 != 0).String() })
	}
	port := func(m map[uint32]*Counters) []Entry {
		return topOf(m, func(k uint32) string { return PortKey(uint16(k>>8), uint8(k)) })
	}
	protos := map[int]*Counters{}
	for p := range t.proto {
		if t.proto[p].Flows != 0 {
			protos[p] = &t.proto[p]
		}
	}
	exporters := map[int]*Counters{}
	for i := range t.exporter {
		if t.exporter[i].Flows != 0 { // as a collector sees it: idle exporters are not there
			exporters[i] = &t.exporter[i]
		}
	}
	return &Top{
		SrcIP: host(t.src), DstIP: host(t.dst), IP: host(t.ip),
		DstPort: port(t.dstPort), SrcPort: port(t.srcPort),
		Proto:    topOf(protos, strconv.Itoa),
		Exporter: topOf(exporters, func(i int) string { return t.exporterNames[i] }),
	}
}

// topOf returns the TopN entries of m. Keys are rendered only for
// candidates: the TopN by bytes plus every key tied with the last of them,
// since string order decides among those.
func topOf[K comparable](m map[K]*Counters, name func(K) string) []Entry {
	type kv struct {
		k K
		c *Counters
	}
	all := make([]kv, 0, len(m))
	for k, c := range m {
		all = append(all, kv{k, c})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(b.c.Bytes, a.c.Bytes) })
	n := min(TopN, len(all))
	for n > 0 && n < len(all) && all[n].c.Bytes == all[n-1].c.Bytes {
		n++
	}
	out := make([]Entry, n)
	for i := range n {
		out[i] = Entry{Key: name(all[i].k), Counters: *all[i].c}
	}
	SortEntries(out)
	return out[:min(TopN, len(out))]
}
