// Package flowgen owns flowgen, a load generator that sends synthetic NetFlow
// v5/v9, IPFIX and sFlow v5 over UDP from several loopback exporters and
// reports the exact truth of what it sent. Each exporter pre-builds a pool of
// datagrams from a seeded Zipf traffic model, then only patches headers,
// times and (the backbone profile) rotated client ports and sends batches
// with sendmmsg; the truth is the pool × send counts, rotations accounted.
package flowgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Export formats.
const (
	FormatV5    = "v5"
	FormatV9    = "v9"
	FormatIPFIX = "ipfix"
	FormatSFlow = "sflow"
)

// MaxDuration bounds every run, also one bounded by Count only.
const MaxDuration = 10 * time.Minute

// Workload profiles (Config.Profile).
const (
	// ProfileBackbone is the default: Zipf over 100,000 sources and 10,000
	// destinations (two pools), the 60 services of DefaultPorts, 48
	// interfaces a side, templates resent every 100 data datagrams per
	// exporter, and client ports rotated on every send so that a flow's
	// tuple does not come back within a minute, as in real NetFlow/IPFIX
	// exports (testdata/pcaps: 1.00 flows per distinct tuple and minute).
	ProfileBackbone = "backbone"
	// ProfilePool is flowgen's workload before the backbone profile, kept
	// so that its figures reproduce: one pool of 100,000 hosts for both
	// ends, the 20 services of PoolPorts, templates every second, and a
	// pool of datagrams re-sent unchanged, so each tuple repeats every
	// time its datagram comes round (hundreds of times a minute).
	ProfilePool = "pool"
)

// Config of a run. Zero values take the defaults noted.
type Config struct {
	Format string // v5, v9, ipfix or sflow
	Target string // collector address, host:port
	// Rate is the total flows (sFlow: samples) per second, 0 = flat out.
	Rate float64
	// Count and Duration stop the run at whichever comes first; at least
	// one is needed. Duration is at most MaxDuration.
	Count    uint64
	Duration time.Duration
	// Exporters is the number of exporters (default 4), each its own socket
	// bound to 127.0.0.2, 127.0.0.3... (see Sources) and observation domain.
	Exporters int
	Seed      uint64
	// Profile is the workload, ProfileBackbone (default) or ProfilePool;
	// the fields below default to its values.
	Profile string
	// Hosts is the number of source addresses (default 100000); in the
	// pool profile, of the hosts both ends are drawn from.
	Hosts int
	// DstHosts is the number of destination addresses, a pool of their own
	// (backbone default 10000; the pool profile has none).
	DstHosts int
	Zipf     float64 // exponent of host and service popularity (default 1.1)
	// Ports are the services, "PORT/PROTO", most popular first (default
	// DefaultPorts; pool profile: PoolPorts).
	Ports []string
	// Sampling is the rate the export announces (default 1); the truth's
	// bytes and packets are multiplied by it.
	Sampling uint32
	Batch    int // datagrams per sendmmsg (default 64)
	// TemplatesEveryDatagrams resends the v9/IPFIX templates after this
	// many data datagrams of an exporter, as routers do (backbone default
	// 100); TemplatesEvery after this long (pool profile default 1s). When
	// either is set the other is off; negative: only at the start.
	TemplatesEveryDatagrams int
	TemplatesEvery          time.Duration
	// TupleRepeat is how many sends of a record keep its client port before
	// it moves to the next (backbone default 1: every send a new tuple).
	// sFlow samples of one flow do repeat in real exports, the less the
	// sparser the sampling: in testdata/pcaps 11.4 samples per tuple and
	// minute unsampled, 2.4 sampled; on a backbone sampling 1 in thousands
	// most flows are sampled once a minute at most, so sFlow too defaults
	// to 1, the hard case for a collector; TupleRepeat 11 models the
	// unsampled capture. The pool profile never rotates ports.
	TupleRepeat int
	// Pool is the number of distinct datagrams per exporter (default 2048,
	// fewer with over 16 exporters so that pools stay within ~50 MB).
	Pool int
	// Sources overrides the exporters' source addresses (then Exporters
	// defaults to len(Sources)).
	Sources []netip.Addr
	// Spread, when > 0, gives every flow whose source is not among the
	// SpreadKeep most popular hosts a fresh source address on each send,
	// cycling through Spread distinct addresses (all exporters together) in
	// 100.0.0.0/6. It models a cardinality attack or a scan: a collector's
	// memory meets Spread distinct sources per cycle while the kept heavy
	// hitters stay exact in the truth. IPv6 flows keep their sources, so
	// the count of distinct spread addresses is exactly Spread.
	Spread uint64
	// SpreadKeep is how many of the most popular host ranks keep their
	// address under Spread (default 100).
	SpreadKeep int
}

// maxSpread is the size of the 100.0.0.0/6 block spread addresses come from.
const maxSpread = 1 << 26

// Validate reports what Run would refuse in cfg.
func (cfg Config) Validate() error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	if _, err := cfg.target(); err != nil {
		return err
	}
	for _, p := range cfg.Ports {
		if _, err := parseService(p); err != nil {
			return fmt.Errorf("flowgen: %w", err)
		}
	}
	return nil
}

// defaults validates cfg and fills in its defaults.
func (cfg *Config) defaults() error {
	switch cfg.Format {
	case FormatV5, FormatV9, FormatIPFIX, FormatSFlow:
	default:
		return fmt.Errorf("flowgen: format %q: want v5, v9, ipfix or sflow", cfg.Format)
	}
	if cfg.Count == 0 && cfg.Duration <= 0 {
		return errors.New("flowgen: a count or a duration is needed")
	}
	if cfg.Duration > MaxDuration || cfg.Duration < 0 {
		return fmt.Errorf("flowgen: duration %s: must be within 0..%s", cfg.Duration, MaxDuration)
	}
	if cfg.Rate < 0 {
		return fmt.Errorf("flowgen: rate %g is negative", cfg.Rate)
	}
	if cfg.Exporters == 0 {
		cfg.Exporters = 4
		if len(cfg.Sources) > 0 {
			cfg.Exporters = len(cfg.Sources)
		}
	}
	if cfg.Exporters < 0 || cfg.Exporters > 250 {
		return fmt.Errorf("flowgen: %d exporters: want 1..250", cfg.Exporters)
	}
	if len(cfg.Sources) > 0 && len(cfg.Sources) < cfg.Exporters {
		return fmt.Errorf("flowgen: %d exporters but %d sources", cfg.Exporters, len(cfg.Sources))
	}
	if err := cfg.profileDefaults(); err != nil {
		return err
	}
	if cfg.Hosts < 2 || cfg.Hosts > 1<<24 {
		return fmt.Errorf("flowgen: %d hosts: want 2..%d", cfg.Hosts, 1<<24)
	}
	if cfg.DstHosts < 0 || cfg.Hosts+cfg.DstHosts > 1<<24 {
		return fmt.Errorf("flowgen: %d destination hosts: want 1..%d with %d sources", cfg.DstHosts, 1<<24-cfg.Hosts, cfg.Hosts)
	}
	if cfg.Zipf == 0 {
		cfg.Zipf = 1.1
	}
	if cfg.Zipf < 0 {
		return fmt.Errorf("flowgen: zipf exponent %g is negative", cfg.Zipf)
	}
	if cfg.Sampling == 0 {
		cfg.Sampling = 1
	}
	if cfg.Format == FormatV5 && cfg.Sampling > 0x3fff {
		return fmt.Errorf("flowgen: sampling %d: NetFlow v5 carries at most %d", cfg.Sampling, 0x3fff)
	}
	if cfg.Batch == 0 {
		cfg.Batch = 64
	}
	if cfg.Batch < 1 || cfg.Batch > 1024 {
		return fmt.Errorf("flowgen: batch %d: want 1..1024", cfg.Batch)
	}
	if cfg.Pool == 0 {
		cfg.Pool = min(2048, max(128, 32768/cfg.Exporters))
	}
	if cfg.Pool < 1 {
		return fmt.Errorf("flowgen: pool %d: want at least 1", cfg.Pool)
	}
	if cfg.Spread > maxSpread {
		return fmt.Errorf("flowgen: spread %d: at most %d", cfg.Spread, maxSpread)
	}
	if cfg.Spread > 0 && cfg.Spread < uint64(cfg.Exporters) {
		return fmt.Errorf("flowgen: spread %d: at least one address per exporter (%d)", cfg.Spread, cfg.Exporters)
	}
	if cfg.SpreadKeep == 0 {
		cfg.SpreadKeep = 100
	}
	if cfg.SpreadKeep < 0 || cfg.SpreadKeep >= cfg.Hosts {
		return fmt.Errorf("flowgen: spread-keep %d: want 1..%d", cfg.SpreadKeep, cfg.Hosts-1)
	}
	return nil
}

// profileDefaults checks the profile and fills in its defaults.
func (cfg *Config) profileDefaults() error {
	if cfg.Profile == "" {
		cfg.Profile = ProfileBackbone
	}
	if cfg.Hosts == 0 {
		cfg.Hosts = 100_000
	}
	if cfg.TupleRepeat < 0 {
		return fmt.Errorf("flowgen: tuple repeat %d is negative", cfg.TupleRepeat)
	}
	if cfg.TemplatesEvery != 0 && cfg.TemplatesEveryDatagrams != 0 {
		return errors.New("flowgen: templates every N datagrams or every D, not both")
	}
	switch cfg.Profile {
	case ProfileBackbone:
		if cfg.DstHosts == 0 {
			cfg.DstHosts = 10_000
		}
		if len(cfg.Ports) == 0 {
			cfg.Ports = DefaultPorts
		}
		if cfg.TemplatesEvery == 0 && cfg.TemplatesEveryDatagrams == 0 {
			cfg.TemplatesEveryDatagrams = 100
		}
		if cfg.TupleRepeat == 0 {
			cfg.TupleRepeat = 1
		}
	case ProfilePool:
		if cfg.DstHosts != 0 {
			return errors.New("flowgen: the pool profile draws both ends from its hosts: no destination hosts")
		}
		if cfg.TupleRepeat != 0 {
			return errors.New("flowgen: the pool profile does not rotate ports: no tuple repeat")
		}
		if len(cfg.Ports) == 0 {
			cfg.Ports = PoolPorts
		}
		if cfg.TemplatesEvery == 0 && cfg.TemplatesEveryDatagrams == 0 {
			cfg.TemplatesEvery = time.Second
		}
	default:
		return fmt.Errorf("flowgen: profile %q: want %s or %s", cfg.Profile, ProfileBackbone, ProfilePool)
	}
	return nil
}

// rotation is how the run rotates client ports.
func (cfg *Config) rotation() rotation {
	if cfg.Profile == ProfilePool {
		return rotation{}
	}
	return rotation{repeat: uint64(cfg.TupleRepeat)}
}

// target resolves the collector's address.
func (cfg *Config) target() (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(cfg.Target); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := net.ResolveUDPAddr("udp", cfg.Target)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("flowgen: target: %w", err)
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// sourceAddr is the address of exporter i.
func (cfg *Config) sourceAddr(i int) netip.Addr {
	if len(cfg.Sources) > 0 {
		return cfg.Sources[i].Unmap()
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})
}

// Run sends until cfg's count or duration is reached, or ctx is done, and
// returns the truth of what was sent. On a send error it returns the truth
// so far along with the error.
func Run(ctx context.Context, cfg Config) (*Truth, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	dst, err := cfg.target()
	if err != nil {
		return nil, err
	}
	services := make([]service, len(cfg.Ports))
	for i, p := range cfg.Ports {
		if services[i], err = parseService(p); err != nil {
			return nil, fmt.Errorf("flowgen: %w", err)
		}
	}
	m := newModel(&cfg, services)
	c := codecFor(cfg.Format)

	exps := make([]*exporter, cfg.Exporters)
	names := make([]string, len(exps))
	defer func() {
		for _, x := range exps {
			if x != nil && x.conn != nil {
				_ = x.conn.Close()
			}
		}
	}()
	for i := range exps {
		src := cfg.sourceAddr(i)
		if src.Is4() != dst.Addr().Is4() {
			return nil, fmt.Errorf("flowgen: exporter address %s and target %s are of different families", src, dst)
		}
		names[i] = src.String()
		x := &exporter{codec: c, src: source{addr: src, domain: uint32(i + 1), sampling: cfg.Sampling, m: m}, rot: cfg.rotation()}
		if cfg.Spread > 0 {
			share := cfg.Spread / uint64(len(exps))
			x.spreadBase, x.spreadN = uint32(uint64(i)*share), uint32(share)
			if i == len(exps)-1 {
				x.spreadN = uint32(cfg.Spread - uint64(i)*share)
			}
		}
		x.count = cfg.Count / uint64(len(exps))
		if uint64(i) < cfg.Count%uint64(len(exps)) {
			x.count++
		}
		if cfg.Count > 0 && x.count == 0 {
			continue // fewer flows than exporters: this one sends nothing
		}
		if x.conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))); err != nil {
			return nil, fmt.Errorf("flowgen: exporter %s: %w", src, err)
		}
		_ = x.conn.SetWriteBuffer(4 << 20) // best effort: loopback sends rarely queue
		exps[i] = x
	}

	// Pools are built in parallel before any sending, so the clock starts on traffic.
	var wg sync.WaitGroup
	for i, x := range exps {
		if x == nil {
			continue
		}
		wg.Go(func() { x.build(&cfg, i) })
	}
	wg.Wait()
	for _, x := range exps {
		if x == nil {
			continue
		}
		if x.snd, err = newSender(x.conn, dst, x.pool); err != nil {
			return nil, fmt.Errorf("flowgen: exporter %s: %w", x.src.addr, err)
		}
	}

	start := time.Now()
	duration := cfg.Duration
	if duration == 0 {
		duration = MaxDuration
	}
	deadline := start.Add(duration)
	rate := cfg.Rate / float64(cfg.Exporters)
	errs := make([]error, len(exps))
	for i, x := range exps {
		if x == nil {
			continue
		}
		x.boot = start.Add(-time.Duration(i+1) * 97 * time.Minute) // exporters "booted" a while ago
		wg.Go(func() {
			if err := x.run(ctx, &cfg, deadline, rate); err != nil {
				errs[i] = fmt.Errorf("flowgen: exporter %s: %w", x.src.addr, err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	return truth(&cfg, m, names, exps, elapsed), errors.Join(errs...)
}

// truth computes the truth from the exporters' pools and send counts.
func truth(cfg *Config, m *model, names []string, exps []*exporter, elapsed time.Duration) *Truth {
	t := &Truth{Format: cfg.Format, Exporters: names, Sampling: cfg.Sampling, ElapsedS: elapsed.Seconds(),
		Workload: cfg.workload()}
	ty := newTally(m, cfg.Sampling, names, cfg.rotation())
	for i, x := range exps {
		if x == nil {
			continue
		}
		for j, d := range x.pool {
			for k := range d.recs {
				n := x.counts[j]
				if j == x.partialPos && k < len(x.partial) {
					n++ // the truncated last datagram: one more send of these
				}
				ty.add(i, &d.recs[k], n)
			}
		}
		t.Sent.Datagrams += x.datagrams
		t.Sent.Flows += x.flows
		t.Sent.TemplateDatagrams += x.templateDatagrams
	}
	t.Total = ty.total
	t.Top = ty.top()
	if cfg.Spread > 0 {
		t.Spread = &SpreadTruth{Distinct: cfg.Spread, Keep: cfg.SpreadKeep, Counters: ty.spread}
	} else {
		t.Tuples = tupleStats(exps, cfg.rotation())
	}
	if t.ElapsedS > 0 {
		t.RateFlowsPerS = float64(t.Sent.Flows) / t.ElapsedS
	}
	return t
}

// exporter is one simulated exporter: its socket, pool and counters. Only
// its own goroutine touches it while sending.
type exporter struct {
	codec codec
	src   source
	rot   rotation
	conn  *net.UDPConn
	snd   *sender
	count uint64 // flows to send, 0 = until the deadline
	boot  time.Time
	ctr   counters
	// sinceTemplates counts the data datagrams sent since the templates.
	sinceTemplates int

	pool []*datagram
	tmpl *datagram // v9/IPFIX templates, nil for other formats

	// Spread: this exporter's share of the spread addresses, [spreadBase,
	// spreadBase+spreadN), and the next one to hand out.
	spreadBase, spreadN, spreadNext uint32

	// What was sent.
	counts            []uint64  // full sends of each pool datagram
	partial           []flowRec // the records of a last, truncated datagram: a prefix of pool[partialPos]
	partialPos        int
	marks             []minuteMark // counts as each calendar minute of sending began
	datagrams         uint64
	flows             uint64
	templateDatagrams uint64
}

// build fills the pool with datagrams of flows drawn from the model, each
// exporter from its own deterministic random stream. When the run is
// bounded by a count, the pool stops once it holds that many flows.
func (x *exporter) build(cfg *Config, i int) {
	r := rand.New(rand.NewPCG(cfg.Seed, 0xf10e6e4+uint64(i)))
	var (
		pending flowRec
		have    bool
		total   uint64
		v4, v6  []flowRec
	)
	for len(x.pool) < cfg.Pool && (x.count == 0 || total < x.count) {
		v4, v6 = v4[:0], v6[:0]
		for {
			if !have {
				pending, have = x.src.m.flow(r), true
			}
			pending.spread = cfg.Spread > 0 && !pending.v6 && pending.src >= uint32(cfg.SpreadKeep)
			nv4, nv6 := len(v4), len(v6)
			if pending.v6 {
				nv6++
			} else {
				nv4++
			}
			if !x.codec.fits(nv4, nv6) {
				break
			}
			if pending.v6 {
				v6 = append(v6, pending)
			} else {
				v4 = append(v4, pending)
			}
			have = false
		}
		recs := append(append(make([]flowRec, 0, len(v4)+len(v6)), v4...), v6...)
		x.pool = append(x.pool, x.encode(recs))
		total += uint64(len(recs))
	}
	x.counts = make([]uint64, len(x.pool))
	x.partialPos = -1
	x.tmpl = x.codec.templates(&x.src)
}

// encode encodes a data datagram of recs and, with rotation, lists its client ports.
func (x *exporter) encode(recs []flowRec) *datagram {
	d := x.codec.encode(&x.src, recs)
	if x.rot.on() {
		ephSlots(x.codec, d)
	}
	return d
}

// templatesDue reports whether the templates are to be sent before the next data.
func (x *exporter) templatesDue(cfg *Config, now, last time.Time) bool {
	switch {
	case x.tmpl == nil:
		return false
	case last.IsZero():
		return true
	case cfg.TemplatesEveryDatagrams > 0:
		return x.sinceTemplates >= cfg.TemplatesEveryDatagrams
	}
	return cfg.TemplatesEvery > 0 && now.Sub(last) >= cfg.TemplatesEvery
}

// run is the send loop: per batch it reads the clock once, resends the
// templates when due, takes tokens for the batch's flows (sleeping when
// ahead of the rate), patches the batch's datagrams and sends them in one
// sendmmsg.
func (x *exporter) run(ctx context.Context, cfg *Config, deadline time.Time, rate float64) error {
	var (
		pos           int
		remaining     = x.count
		tokens        = float64(len(x.pool[0].recs)) // the bucket starts with one datagram
		last          time.Time
		lastTemplates time.Time
		// The bucket holds a batch, or 5 ms of flows at high rates: sleeps
		// overshoot by up to a millisecond or so, and a smaller bucket
		// would lose that time for good.
		burst = max(float64(cfg.Batch*len(x.pool[0].recs)), rate*0.005)
		timer = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	if remaining == 0 {
		remaining = ^uint64(0)
	}
	for remaining > 0 {
		if ctx.Err() != nil {
			return nil // a cancelled run is a finished run: the truth stands
		}
		now := time.Now()
		if !now.Before(deadline) {
			return nil
		}
		st := newStamp(now, x.boot)
		if minute := int64(st.unixMs / 60_000); len(x.marks) == 0 || x.marks[len(x.marks)-1].minute != minute {
			x.marks = append(x.marks, minuteMark{minute: minute, counts: slices.Clone(x.counts)})
		}
		if x.templatesDue(cfg, now, lastTemplates) {
			ok, err := x.sendTemplates(&st)
			if err != nil {
				return err
			}
			if !ok {
				x.sleep(ctx, timer, 100*time.Microsecond) // ENOBUFS: let the queue drain
				continue
			}
			lastTemplates = now
			x.sinceTemplates = 0
		}

		budget := remaining
		next := uint64(len(x.pool[pos].recs))
		if rate > 0 {
			if last.IsZero() {
				last = now
			}
			tokens = min(tokens+now.Sub(last).Seconds()*rate, max(burst, float64(next)))
			last = now
			if need := float64(min(next, remaining)); tokens < need {
				wait := time.Duration((need - tokens) / rate * float64(time.Second))
				x.sleep(ctx, timer, min(wait, deadline.Sub(now)))
				continue
			}
			budget = min(budget, uint64(tokens))
		}

		batch := cfg.Batch
		if x.tmpl != nil && cfg.TemplatesEveryDatagrams > 0 {
			batch = min(batch, cfg.TemplatesEveryDatagrams-x.sinceTemplates)
		}
		k, flows := 0, uint64(0)
		for k < batch && pos+k < len(x.pool) {
			f := uint64(len(x.pool[pos+k].recs))
			if flows+f > budget {
				break
			}
			flows += f
			k++
		}
		if k == 0 {
			// Only the count can leave less than a datagram: send the
			// first flows of the next one, and that is the end.
			ok, err := x.sendPartial(&st, pos, remaining)
			if ok || err != nil {
				return err
			}
			x.sleep(ctx, timer, 100*time.Microsecond)
			continue
		}

		saved := x.ctr
		for i := range k {
			d := x.pool[pos+i]
			x.codec.patch(d, &x.ctr, &st)
			if x.rot.on() {
				rotate(d, x.rot.step(x.counts[pos+i]))
			}
			if x.spreadN > 0 {
				x.spread(d)
			}
		}
		n, err := x.snd.send(pos, k)
		if err != nil {
			x.ctr = saved
			return err
		}
		if n < k {
			// Rewind the counters to what was sent; the unsent datagrams
			// are patched again in the next batch.
			x.ctr = saved
			for i := range n {
				x.codec.patch(x.pool[pos+i], &x.ctr, &st)
			}
		}
		if n == 0 {
			x.sleep(ctx, timer, 100*time.Microsecond) // ENOBUFS: let the queue drain
			continue
		}
		flows = 0
		for i := range n {
			x.counts[pos+i]++
			flows += uint64(len(x.pool[pos+i].recs))
		}
		x.datagrams += uint64(n)
		x.sinceTemplates += n
		x.flows += flows
		remaining -= flows
		tokens -= float64(flows)
		pos = (pos + n) % len(x.pool)
	}
	return nil
}

// spread writes the next spread addresses over the sources of d's spread
// records. Unsent datagrams are simply rewritten again: the truth counts
// spread flows in bulk, not per address.
func (x *exporter) spread(d *datagram) {
	for i := range d.recs {
		if !d.recs[i].spread {
			continue
		}
		a := 100<<24 | (x.spreadBase + x.spreadNext)
		if x.spreadNext++; x.spreadNext == x.spreadN {
			x.spreadNext = 0
		}
		x.codec.putSource(d, i, a)
	}
}

func (x *exporter) sleep(ctx context.Context, t *time.Timer, d time.Duration) {
	if d <= 0 {
		return
	}
	t.Reset(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
}

// sendTemplates sends the template datagram; false (and no error) means
// the kernel had no buffer for it: try again.
func (x *exporter) sendTemplates(st *stamp) (bool, error) {
	saved := x.ctr
	x.codec.patch(x.tmpl, &x.ctr, st)
	ok, err := x.snd.sendBuf(x.tmpl.buf)
	if !ok {
		x.ctr = saved
		return false, err
	}
	x.datagrams++
	x.templateDatagrams++
	return true, nil
}

// sendPartial sends a datagram of the first n flows of pool datagram pos,
// re-encoded: a prefix of its records, so the truth stays exact. false (and
// no error) means the kernel had no buffer for it: try again.
func (x *exporter) sendPartial(st *stamp, pos int, n uint64) (bool, error) {
	recs := x.pool[pos].recs[:n]
	d := x.encode(recs)
	saved := x.ctr
	x.codec.patch(d, &x.ctr, st)
	if x.rot.on() {
		rotate(d, x.rot.step(x.counts[pos])) // the next send of pool[pos], cut short
	}
	if x.spreadN > 0 {
		x.spread(d)
	}
	ok, err := x.snd.sendBuf(d.buf)
	if !ok {
		x.ctr = saved
		return false, err
	}
	x.partial, x.partialPos = recs, pos
	x.datagrams++
	x.sinceTemplates++
	x.flows += n
	return true, nil
}
