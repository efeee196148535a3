package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

var (
	global   = topn.Scope{}
	exporter = topn.Scope{Kind: topn.ScopeExporter, Exporter: addr("192.0.2.1")}
	tcp      = topn.Scope{Kind: topn.ScopeProto, Proto: 6}
	scopes   = []topn.Scope{global, exporter, tcp}
)

func at(d time.Duration) func() time.Time { return func() time.Time { return base.Add(d) } }

// total sums scope sc over [from, to) from the store and memory, as the query engine does.
func (h *harness) total(t *testing.T, sc topn.Scope, from, to time.Time) topn.Counters {
	t.Helper()
	var c topn.Counters
	require.NoError(t, h.agg.View(func(v View) error {
		for _, m := range v.Totals(sc, from, to) {
			c.Add(m)
		}
		return h.store.Totals(store.TierMinute, sc, from, to, func(_ time.Time, m topn.Counters) error {
			c.Add(m)
			return nil
		})
	}))
	return c
}

// stored sums scope sc over [from, to) from the store alone.
func (h *harness) stored(t *testing.T, sc topn.Scope, from, to time.Time) topn.Counters {
	t.Helper()
	var c topn.Counters
	require.NoError(t, h.store.Totals(store.TierMinute, sc, from, to, func(_ time.Time, m topn.Counters) error {
		c.Add(m)
		return nil
	}))
	return c
}

// leftovers counts the checkpoints and final write records in the store.
func leftovers(t *testing.T, st *store.Store) (checkpoints, finals int) {
	t.Helper()
	require.NoError(t, st.Checkpoints(func(time.Time, []byte) error { checkpoints++; return nil }))
	require.NoError(t, st.Finals(func(store.Tier, time.Time, []store.Interval, error) error { finals++; return nil }))
	return checkpoints, finals
}

// flows returns n flows of b bytes each, in the minute of at, from distinct sources.
func flows(n int, b uint64, at time.Time, seed int) []flow.Record {
	out := make([]flow.Record, n)
	for i := range out {
		out[i] = rec(fmt.Sprintf("10.%d.%d.%d", seed, i/250, i%250), "10.0.0.2", uint16(40000+i%100), 443, b, at)
	}
	return out
}

func sum(recs ...[]flow.Record) topn.Counters {
	var c topn.Counters
	for _, rs := range recs {
		for _, r := range rs {
			c.Add(topn.Counters{Bytes: r.Bytes, Packets: r.Packets, Flows: 1})
		}
	}
	return c
}

// kill -9 after a checkpoint: the restart has what the checkpoint had, once,
// and keeps counting into the same minutes.
func TestCheckpointRestoresOpenMinutes(t *testing.T) {
	h := startAggregator(t, nil)
	a := flows(300, 100, base.Add(10*time.Second), 1)
	b := flows(50, 7, base.Add(70*time.Second), 2) // the next minute
	h.push(t, a...)
	h.push(t, b...)
	require.NoError(t, h.agg.checkpoint())
	lost := flows(20, 1000, base.Add(20*time.Second), 3)
	h.push(t, lost...)
	h.crash()

	// 10:01:30: both minutes are within their grace and continue in memory.
	h2 := startOn(t, h.store, h.store, nil, at(90*time.Second))
	require.Equal(t, sum(a, b), h2.total(t, global, base, base.Add(2*time.Minute)))
	require.Zero(t, h2.stored(t, global, base, base.Add(2*time.Minute)), "nothing closed yet")
	c := flows(10, 3, base.Add(30*time.Second), 4)
	h2.push(t, c...)
	require.NoError(t, h2.agg.Stop())
	h2.stopped = true
	for _, sc := range scopes {
		require.Equal(t, sum(a, b, c), h2.stored(t, sc, base, base.Add(2*time.Minute)), sc)
	}
	ck, fin := leftovers(t, h.store)
	require.Zero(t, ck, "Stop deletes the checkpoints its final writes superseded")
	require.Zero(t, fin)
}

// A checkpoint replaces the minute's previous one: restored once, not summed.
// Unchanged minutes are not written again.
func TestCheckpointReplacesPrevious(t *testing.T) {
	h := startAggregator(t, nil)
	a := flows(100, 10, base.Add(10*time.Second), 1)
	b := flows(100, 20, base.Add(15*time.Second), 2)
	h.push(t, a...)
	require.NoError(t, h.agg.checkpoint())
	first := h.agg.ckBytes.Load()
	require.Positive(t, first)
	require.NoError(t, h.agg.checkpoint())
	require.Zero(t, h.agg.ckBytes.Load(), "nothing changed, nothing written")
	h.push(t, b...)
	require.NoError(t, h.agg.checkpoint())
	require.Greater(t, h.agg.ckBytes.Load(), first)
	require.EqualValues(t, 3, h.agg.checkpoints.Load())
	h.crash()

	h2 := startOn(t, h.store, h.store, nil, at(30*time.Second))
	require.Equal(t, sum(a, b), h2.total(t, global, base, base.Add(time.Minute)))
}

// A checkpointed minute whose grace ended while tmsd was down is written at start.
func TestRestoredMinutePastGraceClosesAtStart(t *testing.T) {
	h := startAggregator(t, nil)
	a := flows(40, 10, base.Add(10*time.Second), 1)
	h.push(t, a...)
	require.NoError(t, h.agg.checkpoint())
	h.crash()

	h2 := startOn(t, h.store, h.store, nil, at(5*time.Minute))
	require.Equal(t, sum(a), h2.stored(t, global, base, base.Add(time.Minute)))
	require.Equal(t, sum(a), h2.total(t, global, base, base.Add(time.Minute)), "not also in memory")
	ck, fin := leftovers(t, h.store)
	require.Zero(t, ck)
	require.Zero(t, fin)
}

// faultStore makes the aggregator's writes fail at a chosen step of a final write.
type faultStore struct {
	*store.Store
	mu         sync.Mutex
	failBegin  bool
	putsLeft   int // PutInterval calls that succeed; then they fail
	failEnd    bool
	begins     int  // BeginFinal calls
	failing    bool // fail every write
	checkpoint bool // fail PutCheckpoint
}

var errInjected = fmt.Errorf("injected: %w", syscall.EIO)

func (f *faultStore) BeginFinal(ivs []store.Interval) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.begins++
	if f.failBegin || f.failing {
		return errInjected
	}
	return f.Store.BeginFinal(ivs)
}

func (f *faultStore) PutInterval(now time.Time, iv store.Interval) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.putsLeft <= 0 || f.failing {
		return errInjected
	}
	f.putsLeft--
	return f.Store.PutInterval(now, iv)
}

func (f *faultStore) EndFinal(tier store.Tier, start time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failEnd || f.failing {
		return errInjected
	}
	return f.Store.EndFinal(tier, start)
}

func (f *faultStore) PutCheckpoints(cks []store.Checkpoint, pos []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.checkpoint || f.failing {
		return errInjected
	}
	return f.Store.PutCheckpoints(cks, pos)
}

// kill -9 at each step of a final write (before it, after each interval, before
// its end): the restart counts every flow of the minute once, in every scope,
// including late flows merged into the already stored minute.
func TestCrashDuringFinalWrite(t *testing.T) {
	// The minute's intervals: the global scope, one exporter, one protocol.
	const intervals = 3
	f := func(name string, fault func(*faultStore), wantLate2 bool) {
		t.Run(name, func(t *testing.T) {
			st := newStore(t, store.Dependencies{})
			fs := &faultStore{Store: st, putsLeft: 1 << 30}
			h := startOn(t, st, fs, nil, at(10*time.Second))
			a := flows(200, 10, base.Add(10*time.Second), 1)
			h.push(t, a...)
			require.NoError(t, h.agg.FlushAll())
			// Late flows for the stored minute: some checkpointed, some not yet.
			late := flows(30, 1000, base.Add(40*time.Second), 2)
			h.push(t, late...)
			require.NoError(t, h.agg.checkpoint())
			late2 := flows(5, 100_000, base.Add(50*time.Second), 3)
			h.push(t, late2...)
			fs.mu.Lock()
			fault(fs)
			fs.mu.Unlock()
			require.ErrorIs(t, h.agg.FlushAll(), syscall.EIO)
			// Until the crash, queries see every scope exactly once.
			for _, sc := range scopes {
				require.Equal(t, sum(a, late, late2), h.total(t, sc, base, base.Add(time.Minute)), sc)
			}
			h.crash()

			h2 := startOn(t, st, st, nil, at(10*time.Minute))
			want := sum(a, late)
			if wantLate2 {
				want = sum(a, late, late2)
			}
			for _, sc := range scopes {
				require.Equal(t, want, h2.stored(t, sc, base, base.Add(time.Minute)), sc)
			}
			require.Equal(t, want, h2.total(t, global, base, base.Add(time.Minute)))
			ck, fin := leftovers(t, st)
			require.Zero(t, ck)
			require.Zero(t, fin)
		})
	}
	// Before the final write began, the checkpoint (a, late) is all there is:
	// late2 came after it and is lost; nothing is counted twice.
	f("before BeginFinal", func(fs *faultStore) { fs.failBegin = true }, false)
	// Once it began, its redo record holds the whole minute, late2 included.
	for k := range intervals {
		f(fmt.Sprintf("after %d of %d intervals", k, intervals), func(fs *faultStore) { fs.putsLeft = k }, true)
	}
	f("before EndFinal", func(fs *faultStore) { fs.failEnd = true }, true)
}

// A checkpoint that does not decode is logged, deleted and skipped; the others are restored.
func TestCorruptCheckpointIsSkipped(t *testing.T) {
	h := startAggregator(t, nil)
	a := flows(10, 10, base.Add(70*time.Second), 1)
	h.push(t, a...)
	require.NoError(t, h.agg.checkpoint())
	require.NoError(t, h.store.PutCheckpoint(base, []byte("not a checkpoint")))
	h.crash()

	h2 := startOn(t, h.store, h.store, nil, at(90*time.Second))
	require.Equal(t, sum(a), h2.total(t, global, base, base.Add(2*time.Minute)))
	ck, _ := leftovers(t, h.store)
	require.Equal(t, 1, ck, "the corrupt one is deleted")
}

// entriesOf lists a table's keys with their counters, by scope.
func entriesOf(t *table) map[uint64]topn.Counters {
	out := map[uint64]topn.Counters{}
	t.each(func(k uint64, c topn.Counters) { out[k] = c })
	return out
}

// The checkpoint encoding round-trips, and any damage is detected, never a panic.
func TestCheckpointCodec(t *testing.T) {
	h := startAggregator(t, func(c *Configuration) { c.Shards = 1 })
	h.push(t, flows(500, 10, base.Add(10*time.Second), 1)...)
	h.push(t, flows(5, 10, base.Add(10*time.Second), 2)...)
	r := rec("10.0.0.1", "2001:db8::7", 1, 2, 3, base.Add(10*time.Second))
	r.Exporter, r.Proto, r.InIf, r.OutIf = addr("2001:db8::1"), 17, 7, 9
	h.push(t, r)
	s := h.agg.shards[0]
	s.mu.Lock()
	m := s.minutes[base.Unix()]
	s.mu.Unlock()
	src := m.tables[specIndex(scPart, topn.DimSrcIP)]
	src.evicted[0] = topn.Counters{Bytes: 5, Packets: 1, Flows: 1}
	m.tables[specIndex(scNone, topn.DimPeer)].base = topn.Counters{Bytes: 2}

	b, flowsIn := h.agg.encodeCheckpoint(nil, base.Unix())
	require.EqualValues(t, 506, flowsIn)
	got, err := h.agg.decodeCheckpoint(b, base.Unix())
	require.NoError(t, err)
	require.Len(t, got, 1)
	q := got[0]
	require.Equal(t, m.keys, q.keys)
	require.Equal(t, m.flowCount, q.flowCount)
	require.Equal(t, m.exps, q.exps)
	require.Equal(t, m.parts.keys, q.parts.keys)
	require.Equal(t, m.ifs.keys, q.ifs.keys)
	require.Equal(t, m.v6, q.v6)
	for i, tb := range m.tables {
		if tb == nil {
			require.Nil(t, q.tables[i])
			continue
		}
		require.NotNil(t, q.tables[i], "table %d", i)
		require.Equal(t, entriesOf(tb), entriesOf(q.tables[i]), "table %d", i)
		require.Equal(t, tb.base, q.tables[i].base)
		for sc := range tb.scopeN {
			require.Equal(t, tb.bound(uint64(sc)), q.tables[i].bound(uint64(sc)), "table %d scope %d", i, sc)
		}
	}
	again, _ := h.agg.encodeCheckpoint(nil, base.Unix())
	require.Equal(t, len(b), len(again))

	_, err = h.agg.decodeCheckpoint(b, base.Unix()+60)
	require.ErrorIs(t, err, store.ErrCorrupt, "another minute's")
	for n := range len(b) {
		_, err := h.agg.decodeCheckpoint(b[:n], base.Unix())
		require.ErrorIs(t, err, store.ErrCorrupt, "cut at %d", n)
	}
	for i := 0; i < len(b); i += 7 {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		_, err := h.agg.decodeCheckpoint(c, base.Unix())
		require.ErrorIs(t, err, store.ErrCorrupt, "bit flipped at %d", i)
	}
}

// FuzzDecodeCheckpoint: no input panics; errors wrap store.ErrCorrupt.
func FuzzDecodeCheckpoint(f *testing.F) {
	const start = 1_700_000_040
	cls, _ := apps.New(nil)
	cfg := DefaultConfiguration()
	cfg.Shards = 1
	a, err := New(cfg, Dependencies{Ring: ring.NewBroadcast(16, 1), Store: nopStore{}, Classifier: cls})
	if err != nil {
		f.Fatal(err)
	}
	r := rec("10.0.0.1", "2001:db8::2", 40000, 443, 10, time.Unix(start, 0))
	a.addBatch(a.shards[0], []flow.Record{r})
	b, _ := a.encodeCheckpoint(nil, start)
	f.Add(b)
	f.Add(b[:len(b)-4])
	f.Fuzz(func(t *testing.T, b []byte) {
		sealed := binary.LittleEndian.AppendUint32(bytes.Clone(b), crc32.Checksum(b, castagnoli))
		for _, in := range [][]byte{b, sealed} {
			if _, err := a.decodeCheckpoint(in, start); err != nil && !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
		}
	})
}

// Checkpoints taken while the shards count: the lock discipline under -race,
// and the last checkpoint restores every flow counted before it.
func TestCheckpointDuringIngest(t *testing.T) {
	h := startAggregator(t, nil)
	var all []flow.Record
	for i := range 8 {
		all = append(all, flows(400, uint64(i+1), base.Add(time.Duration(i)*10*time.Second), i)...)
	}
	done := make(chan struct{})
	var rounds atomic.Int64
	go func() {
		defer close(done)
		for i := 0; i < 200 && rounds.Load() < 1000; i++ {
			if h.agg.checkpoint() != nil {
				return
			}
			rounds.Add(1)
		}
	}()
	for i := 0; i < len(all); i += 100 {
		h.push(t, all[i:i+100]...)
	}
	<-done
	require.NoError(t, h.agg.checkpoint())
	h.crash()
	h2 := startOn(t, h.store, h.store, nil, at(0))
	require.Equal(t, sum(all), h2.total(t, global, base, base.Add(2*time.Minute)))
}

// A format 1 checkpoint, left by a tmsd of the engine before, without
// interfaces and drill-downs, still restores: into its partition's tables,
// in no interface scope, and with drill-down tables whose bound is the
// minute's whole total (its traffic may be anywhere in them).
func TestCheckpointFormat1Restores(t *testing.T) {
	const start = 1_700_000_040
	b := []byte{checkpointFormatV1}
	b = binary.BigEndian.AppendUint64(b, start)
	b = binary.AppendUvarint(b, 1) // one partition
	exp := addr("192.0.2.1")
	b = append(b, exp[:]...)
	b = append(b, 6)
	total := topn.Counters{Bytes: 1000, Packets: 10, Flows: 2}
	b = appendCounters(b, total)
	k := topn.PortKey(443, 6)
	for range legacyDims {
		b = appendCounters(b, topn.Counters{})
		b = binary.AppendUvarint(b, 1)
		b = append(b, 3)
		b = append(b, k[:3]...)
		b = appendCounters(b, total)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	h := startAggregator(t, func(c *Configuration) { c.Shards = 1 })
	got, err := h.agg.decodeCheckpoint(b, start)
	require.NoError(t, err)
	require.Len(t, got, 1)
	m := got[0]
	require.Equal(t, total.Flows, m.flowCount)
	require.Equal(t, total, m.partTotal(topn.Scope{Kind: topn.ScopeExporter, Exporter: exp}))
	require.Zero(t, m.tables[specIndex(scIn, 0)].n, "in no interface scope")
	require.Equal(t, total, m.tables[specIndex(scApp, topn.DimSrcIP)].bound(3))
	require.Equal(t, total, m.tables[specIndex(scNone, topn.DimPeer)].bound(0))
	// dstport 443/tcp of the partition, with its counters
	c, ok := m.tables[specIndex(scPart, topn.DimDstPort)].get(0<<valueBits | 443<<8 | 6)
	require.True(t, ok)
	require.Equal(t, total, c)
}

// A checkpoint pass over its key budget saves each scope's top keys by
// bytes, as a compaction would keep them: the restored tables hold those
// keys with their exact counters, totals stay exact, and every dropped key
// lies within the restored bound.
func TestCheckpointCutToItsBudget(t *testing.T) {
	h := startAggregator(t, func(c *Configuration) { c.Shards = 1 })
	var recs []flow.Record
	for i := range 600 { // 600 sources, source i with i+1 bytes
		recs = append(recs, rec(fmt.Sprintf("10.1.%d.%d", i/250, i%250), "10.0.0.2", 40000, 443, uint64(i+1), base.Add(10*time.Second)))
	}
	h.push(t, recs...)
	s := h.agg.shards[0]
	s.mu.Lock()
	m := s.minutes[base.Unix()]
	s.mu.Unlock()
	budget := int(h.agg.cfg.MaxMemory / 64 / 4)
	require.Zero(t, h.agg.checkpointCap(m.keys, 40), "within the budget: whole")
	require.Equal(t, 64, h.agg.checkpointCap(budget+1, 1_000_000), "over it, many scopes: at least 64")
	require.Equal(t, budget/10, h.agg.checkpointCap(budget+1, 10), "over it: the budget shared by the scopes")

	h.agg.ckCap = 100
	b, _ := h.agg.encodeCheckpoint(nil, base.Unix())
	h.agg.ckCap = 0
	got, err := h.agg.decodeCheckpoint(b, base.Unix())
	require.NoError(t, err)
	q := got[0]
	require.Equal(t, m.partTotal(topn.Scope{}), q.partTotal(topn.Scope{}))
	i := specIndex(scPart, topn.DimSrcIP)
	src := q.tables[i]
	require.Equal(t, 100, src.n)
	require.Equal(t, []uint64{500, 1}, []uint64{src.bound(0).Bytes, src.bound(0).Flows}, "the largest dropped source: 500 bytes in 1 flow")
	for k, c := range entriesOf(src) {
		want, ok := m.tables[i].get(k)
		require.True(t, ok)
		require.Equal(t, want, c)
		require.Greater(t, c.Bytes, uint64(500))
	}
	j := specIndex(scPart, topn.DimDstIP)
	require.Equal(t, entriesOf(m.tables[j]), entriesOf(q.tables[j]), "tables under the cap are saved whole")
}

// feed is a Source as the Kafka consumer is one: a count of flows handed
// on, paused under its lock.
type feed struct {
	mu      sync.Mutex
	handed  uint64
	durable []uint64
}

func (f *feed) Pause() []byte { f.mu.Lock(); return binary.AppendUvarint(nil, f.handed) }
func (f *feed) Resume()       { f.mu.Unlock() }
func (f *feed) Durable(pos []byte) error {
	v, _ := binary.Uvarint(pos)
	f.durable = append(f.durable, v)
	return nil
}

func (f *feed) hand(t *testing.T, h *harness, recs []flow.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h.push(t, recs...)
	f.handed += uint64(len(recs))
}

// With a Source, what a restart finds (checkpoints and final writes) holds
// exactly the flows up to the last position the source was told is
// durable: a checkpoint records its position, and a closed minute is
// checkpointed before its final write, which cannot then run ahead.
func TestSourcePositionFollowsCheckpoints(t *testing.T) {
	st := newStore(t, store.Dependencies{})
	src := &feed{}
	start := func(clock func() time.Time) *harness {
		cfg := DefaultConfiguration()
		cfg.Shards, cfg.FlushInterval, cfg.CheckpointInterval = 2, time.Hour, time.Hour
		cls, err := apps.New(nil)
		require.NoError(t, err)
		r := ring.NewBroadcast(1<<12, Shards(cfg))
		a, err := New(cfg, Dependencies{Ring: r, Store: st, Classifier: cls, Clock: clock, Logger: slog.New(slog.DiscardHandler), Source: src})
		require.NoError(t, err)
		require.NoError(t, a.Start())
		return &harness{agg: a, ring: r, store: st}
	}
	h := start(at(0))
	m0 := flows(300, 100, base.Add(10*time.Second), 1)
	src.hand(t, h, m0)
	require.NoError(t, h.agg.checkpoint())
	require.Equal(t, []uint64{300}, src.durable)

	late := flows(20, 1000, base.Add(20*time.Second), 2)
	src.hand(t, h, late)
	m1 := flows(40, 7, base.Add(70*time.Second), 3)
	src.hand(t, h, m1)
	// Minute 0 closes: checkpointed (with minute 1) at 360, then written.
	require.NoError(t, h.agg.FlushBefore(base.Add(3*time.Minute)))
	require.Equal(t, []uint64{300, 360}, src.durable)
	require.Equal(t, sum(m0, late), h.stored(t, global, base, base.Add(time.Minute)))

	lost := flows(30, 5, base.Add(80*time.Second), 4) // handed after the last pass
	src.hand(t, h, lost)
	h.crash()
	pos, err := st.CheckpointPosition()
	require.NoError(t, err)
	require.Equal(t, binary.AppendUvarint(nil, 360), pos)

	h2 := start(at(90 * time.Second))
	t.Cleanup(func() { require.NoError(t, h2.agg.Stop()) })
	require.Equal(t, sum(m0, late, m1), h2.total(t, global, base, base.Add(2*time.Minute)),
		"the first 360 flows, each once: the source resumes at 360")
}
