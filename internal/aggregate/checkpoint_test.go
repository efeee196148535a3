package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
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

func (f *faultStore) PutCheckpoint(start time.Time, v []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.checkpoint || f.failing {
		return errInjected
	}
	return f.Store.PutCheckpoint(start, v)
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

// The checkpoint encoding round-trips, and any damage is detected, never a panic.
func TestCheckpointCodec(t *testing.T) {
	// Drill-downs on, so the codec carries their composite tables too.
	h := startAggregator(t, func(c *Configuration) { c.Shards, c.DrillDowns = 1, 100 })
	h.push(t, flows(500, 10, base.Add(10*time.Second), 1)...)
	h.push(t, flows(5, 10, base.Add(10*time.Second), 2)...)
	r := rec("10.0.0.1", "10.0.0.2", 1, 2, 3, base.Add(10*time.Second))
	r.Exporter, r.Proto = addr("2001:db8::1"), 17
	h.push(t, r)
	s := h.agg.shards[0]
	s.mu.Lock()
	m := s.minutes[base.Unix()]
	s.mu.Unlock()
	m.parts[partKey{exporter: addr("192.0.2.1"), proto: 6}].dims[topn.DimSrcIP].evicted = topn.Counters{Bytes: 5, Packets: 1, Flows: 1}

	b, flowsIn := h.agg.encodeCheckpoint(nil, base.Unix())
	require.EqualValues(t, 506, flowsIn)
	got, err := decodeCheckpoint(b, base.Unix())
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, m.keys, got[0].keys)
	require.Equal(t, len(m.parts), len(got[0].parts))
	for pk, p := range m.parts {
		q := got[0].parts[pk]
		require.NotNil(t, q)
		require.Equal(t, p.total, q.total)
		for _, d := range countedDims {
			require.ElementsMatch(t, p.dims[d].entries(), q.dims[d].entries(), d)
		}
	}
	for i := range m.drill {
		q := got[0].drill[i]
		require.NotNil(t, q, "drill-down table %d", i)
		require.NotZero(t, m.drill[i].len())
		require.Equal(t, m.drill[i].evicted, q.evicted)
		require.ElementsMatch(t, wideRows(m.drill[i]), wideRows(q), "drill-down table %d", i)
	}
	again, _ := h.agg.encodeCheckpoint(nil, base.Unix())
	require.Equal(t, len(b), len(again))

	_, err = decodeCheckpoint(b, base.Unix()+60)
	require.ErrorIs(t, err, store.ErrCorrupt, "another minute's")
	for n := range len(b) {
		_, err := decodeCheckpoint(b[:n], base.Unix())
		require.ErrorIs(t, err, store.ErrCorrupt, "cut at %d", n)
	}
	for i := 0; i < len(b); i += 7 {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		_, err := decodeCheckpoint(c, base.Unix())
		require.ErrorIs(t, err, store.ErrCorrupt, "bit flipped at %d", i)
	}
}

// FuzzDecodeCheckpoint: no input panics; errors wrap store.ErrCorrupt.
func FuzzDecodeCheckpoint(f *testing.F) {
	const start = 1_700_000_040
	m := newMinuteAgg(true, nil)
	p := m.part(partKey{proto: 6}, nil)
	p.total = topn.Counters{Bytes: 10, Packets: 1, Flows: 1}
	for _, d := range countedDims {
		p.dims[d].add(topn.PortKey(443, 6), p.total, 100)
	}
	a := &Aggregator{pending: []*closingMinute{{start: start, shards: []*minuteAgg{m, newMinuteAgg(false, nil)}}}}
	b, _ := a.encodeCheckpoint(nil, start)
	f.Add(b)
	f.Add(b[:len(b)-4])
	f.Fuzz(func(t *testing.T, b []byte) {
		sealed := binary.LittleEndian.AppendUint32(bytes.Clone(b), crc32.Checksum(b, castagnoli))
		for _, in := range [][]byte{b, sealed} {
			if _, err := decodeCheckpoint(in, start); err != nil && !errors.Is(err, store.ErrCorrupt) {
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

func TestKeyLen(t *testing.T) {
	f := func(k topn.Key, want int) {
		t.Helper()
		require.Equal(t, want, keyLen(&k))
	}
	f(topn.Key{}, 0)
	f(topn.PortKey(443, 6), 3)
	f(topn.PortKey(0, 0), 0)
	f(topn.AddrKey(addr("192.0.2.1")), 16)
	f(topn.AddrKey(addr("::")), 0)
	f(topn.AddrKey(addr("100::")), 1)
	f(topn.IfKey(addr("192.0.2.1"), 7), 20)
	f(topn.AppKey("https"), 5)
	var full topn.Key
	full[23] = 1
	f(full, 24)
	full[23], full[8] = 0, 1
	f(full, 9)
}

func wideRows(t *drillTable) []wideSlot {
	var out []wideSlot
	for _, sl := range t.counts.slots {
		if sl.tag != 0 {
			out = append(out, sl)
		}
	}
	return out
}

// A format 1 checkpoint, left by a tmsd without interfaces and drill-downs,
// still restores: its partition is in no interface scope, and its minute has
// no composite tables, so a drill-down bounds its rows by the whole total.
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
	for range countedDims {
		b = appendCounters(b, topn.Counters{})
		b = binary.AppendUvarint(b, 1)
		b = append(b, 3)
		b = append(b, k[:3]...)
		b = appendCounters(b, total)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	got, err := decodeCheckpoint(b, start)
	require.NoError(t, err)
	require.Len(t, got, 1)
	m := got[0]
	require.Len(t, m.parts, 1)
	for pk, p := range m.parts {
		require.True(t, pk.noIf)
		require.Equal(t, total, p.total)
		require.False(t, pk.in(topn.Scope{Kind: topn.ScopeInterface, Exporter: exp, Dir: topn.DirIn}))
		require.True(t, pk.in(topn.Scope{Kind: topn.ScopeExporter, Exporter: exp}))
	}
	require.Nil(t, m.drill[0])
	require.Equal(t, total, m.drillEvicted(drillAppSrcIP))
}

// A checkpoint pass over its key budget saves each table's top keys by bytes,
// as a compaction would keep them: the restored tables hold those keys with
// their exact counters, totals stay exact, and every dropped key lies within
// the restored evicted bound.
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
	require.Zero(t, h.agg.checkpointCap(s.keys, 7), "within the budget: whole")
	require.Equal(t, 2*h.agg.cfg.TopK, h.agg.checkpointCap(h.agg.shardKeyBudget, 1_000_000), "over it, many tables: at least 2 × top_k")
	require.Equal(t, h.agg.shardKeyBudget/4/10, h.agg.checkpointCap(h.agg.shardKeyBudget, 10), "over it: the budget shared by the tables")

	h.agg.ckCap = 100
	b, _ := h.agg.encodeCheckpoint(nil, base.Unix())
	h.agg.ckCap = 0
	got, err := decodeCheckpoint(b, base.Unix())
	require.NoError(t, err)
	pk := partKey{exporter: addr("192.0.2.1"), proto: 6}
	p, q := m.parts[pk], got[0].parts[pk]
	require.Equal(t, p.total, q.total)
	src := q.dims[topn.DimSrcIP]
	require.Equal(t, 100, src.len())
	require.Equal(t, []uint64{500, 1}, []uint64{src.evicted.Bytes, src.evicted.Flows}, "the largest dropped source: 500 bytes in 1 flow")
	for _, e := range src.entries() {
		c, ok := p.dims[topn.DimSrcIP].counts.get(&e.Key)
		require.True(t, ok)
		require.Equal(t, c, e.Value)
		require.Greater(t, e.Value.Bytes, uint64(500))
	}
	require.Equal(t, p.dims[topn.DimDstIP].entries(), q.dims[topn.DimDstIP].entries(), "tables under the cap are saved whole")
}
