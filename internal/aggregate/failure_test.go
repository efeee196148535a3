package aggregate

import (
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/store"
)

// The disk fills (the store's free-space probe says so): closed minutes wait in
// memory, queries still count them once, late flows join them, and when space
// returns everything lands exactly once.
func TestDiskFullKeepsMinutesUntilSpaceReturns(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 40)
	st := newStore(t, store.Dependencies{FreeSpace: func(string) (uint64, error) { return free.Load(), nil }})
	h := startOn(t, st, st, nil, at(0))
	a := flows(100, 10, base.Add(10*time.Second), 1)
	b := flows(100, 20, base.Add(70*time.Second), 2)
	h.push(t, a...)
	h.push(t, b...)

	free.Store(1 << 20)
	err := h.agg.FlushBefore(base.Add(3 * time.Minute))
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.ErrorIs(t, err, store.ErrDiskFull)
	require.EqualValues(t, 2, h.agg.pendingCount.Load())
	require.ErrorIs(t, h.agg.checkpoint(), syscall.ENOSPC)
	require.EqualValues(t, 1, h.agg.ckErrors.Load())
	for _, sc := range scopes {
		require.Equal(t, sum(a, b), h.total(t, sc, base, base.Add(2*time.Minute)), sc)
	}
	require.Zero(t, h.stored(t, global, base, base.Add(2*time.Minute)))

	// A late flow for a waiting minute joins it at the next flush.
	late := rec("10.9.9.9", "10.0.0.2", 1, 443, 5000, base.Add(4*time.Minute))
	late.End = base.Add(30 * time.Second).UnixMilli()
	h.push(t, late)
	require.ErrorIs(t, h.agg.FlushBefore(base.Add(4*time.Minute)), syscall.ENOSPC)
	require.EqualValues(t, 2, h.agg.pendingCount.Load())
	want := sum(a, b, []flow.Record{late})
	require.Equal(t, want, h.total(t, global, base, base.Add(2*time.Minute)))

	free.Store(1 << 40)
	require.NoError(t, h.agg.FlushBefore(base.Add(4*time.Minute)))
	require.Zero(t, h.agg.pendingCount.Load())
	for _, sc := range scopes {
		require.Equal(t, want, h.stored(t, sc, base, base.Add(2*time.Minute)), sc)
		require.Equal(t, want, h.total(t, sc, base, base.Add(2*time.Minute)), sc)
	}
	require.Zero(t, h.agg.droppedMinutes.Load())
	ck, fin := leftovers(t, st)
	require.Zero(t, ck)
	require.Zero(t, fin)
}

// startFailing starts one shard with top_k 10, no grace and max_memory
// maxMemory on a store whose writes fail until fs.failing is cleared.
func startFailing(t *testing.T, maxMemory int64) (*faultStore, *harness) {
	st := newStore(t, store.Dependencies{})
	fs := &faultStore{Store: st, putsLeft: 1 << 30, failing: true}
	h := startOn(t, st, fs, func(c *Configuration) {
		c.Shards, c.TopK, c.MaxMemory, c.Grace = 1, 10, maxMemory, 0
	}, at(0))
	return fs, h
}

// While the store fails, the waiting minutes and the open ones stay within
// max_memory: the oldest waiting minutes are dropped and counted, the rest land.
func TestWaitingMinutesOverBudgetDropOldest(t *testing.T) {
	fs, h := startFailing(t, 1<<20)
	budget := h.agg.cfg.MaxMemory
	const perMinute = 1000 // distinct sources
	for i := range 8 {
		h.push(t, flows(perMinute, 10, base.Add(time.Duration(i)*time.Minute+time.Second), i)...)
		require.ErrorIs(t, h.agg.FlushBefore(base.Add(time.Duration(i+1)*time.Minute)), syscall.EIO)
		var held int64
		for _, cm := range h.agg.pending {
			held += cm.bytes()
		}
		require.LessOrEqual(t, held, budget, "minute %d", i)
	}
	dropped := h.agg.droppedMinutes.Load()
	require.Positive(t, dropped)
	require.EqualValues(t, dropped*perMinute, h.agg.droppedFlows.Load())
	require.EqualValues(t, 8-dropped, h.agg.pendingCount.Load())

	fs.mu.Lock()
	fs.failing = false
	fs.mu.Unlock()
	require.NoError(t, h.agg.FlushBefore(base.Add(8*time.Minute)))
	got := h.stored(t, global, base, base.Add(8*time.Minute))
	require.EqualValues(t, (8-dropped)*perMinute, got.Flows, "the newest minutes landed, once")
	require.Zero(t, h.stored(t, global, base, base.Add(time.Duration(dropped)*time.Minute)).Flows, "the oldest were dropped")
}

// The flusher backs off while the store fails: attempts at ticks 1, 2, 4, 8…,
// at most maxBackoff apart, and back to every tick once a flush succeeds.
func TestFlushBackoff(t *testing.T) {
	st := newStore(t, store.Dependencies{})
	fs := &faultStore{Store: st, putsLeft: 1 << 30, failing: true}
	cls, err := apps.New(nil)
	require.NoError(t, err)
	cfg := DefaultConfiguration()
	cfg.Shards, cfg.FlushInterval = 1, time.Second
	// Not started: the test is the flusher, calling flushTick as its ticker would.
	a, err := New(cfg, Dependencies{Ring: ring.NewBroadcast(16, Shards(cfg)), Store: fs, Classifier: cls, Clock: at(5 * time.Minute), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	r := rec("10.0.0.1", "10.0.0.2", 1, 443, 10, base)
	a.addBatch(a.shards[0], []flow.Record{r})

	var attempts []int
	tick := func(n int) {
		before := fs.begins
		a.flushTick()
		if fs.begins != before {
			attempts = append(attempts, n)
		}
	}
	for n := 1; n <= 200; n++ {
		tick(n)
	}
	require.Equal(t, []int{1, 2, 4, 8, 16, 32, 64, 124, 184}, attempts)
	fs.failing = false
	attempts = nil
	for n := 201; n <= 250; n++ {
		tick(n)
	}
	require.Equal(t, []int{244}, attempts)
	require.Zero(t, a.failures)
	require.Zero(t, a.backoff)
	a.addBatch(a.shards[0], []flow.Record{r})
	tick(251)
	require.Equal(t, []int{244, 251}, attempts, "every tick again")
}

// Stop with a store that refuses the final writes: the minutes are checkpointed,
// and the next start writes them, all of them.
func TestStopCheckpointsWhatTheStoreRefuses(t *testing.T) {
	st := newStore(t, store.Dependencies{})
	fs := &faultStore{Store: st, putsLeft: 1 << 30, failBegin: true}
	h := startOn(t, st, fs, nil, at(0))
	a := flows(100, 10, base.Add(10*time.Second), 1)
	h.push(t, a...)
	require.ErrorIs(t, h.agg.Stop(), syscall.EIO)
	h.stopped = true

	h2 := startOn(t, st, st, nil, at(10*time.Minute))
	require.Equal(t, sum(a), h2.stored(t, global, base, base.Add(time.Minute)))
}

// max_memory bounds the minutes outside the shards too: while a closed minute
// waits for the store, the open ones get what it leaves, and the next minute
// is presized to fit in that, not to the closed one's size.
func TestOpenMinutesLeaveRoomForWaitingOnes(t *testing.T) {
	fs, h := startFailing(t, 8<<20)
	t.Cleanup(func() { // before Stop's flush
		fs.mu.Lock()
		fs.failing = false
		fs.mu.Unlock()
	})
	budget := h.agg.cfg.MaxMemory
	s := h.agg.shards[0]
	held := func() (open, outside int64) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.bytes, h.agg.outside.Load()
	}
	h.push(t, flows(3000, 10, base.Add(time.Second), 1)...)
	require.ErrorIs(t, h.agg.FlushBefore(base.Add(time.Minute)), syscall.EIO)
	open, outside := held()
	require.Zero(t, open)
	require.Positive(t, outside, "the waiting minute is counted outside the shards")
	require.Less(t, outside, budget/2)
	for i := range 20 {
		h.push(t, flows(2000, 10, base.Add(time.Minute+time.Second), 100+i)...)
		open, outside = held()
		require.LessOrEqual(t, open, budget-outside, "batch %d: open minutes within what the waiting one leaves", i)
	}
	require.Positive(t, h.agg.compactions.Load())
	require.Zero(t, h.agg.droppedMinutes.Load(), "the waiting minute kept")
}

// Each close measures what it built against its minute's bytes, and the
// shards keep that much room for the closes of their open minutes.
func TestCloseRatioIsMeasured(t *testing.T) {
	h := startAggregator(t, func(c *Configuration) { c.Shards = 1 })
	require.EqualValues(t, 1000, h.agg.closeRatio.Load(), "until a close has measured it")
	full := h.agg.shardLimit()
	require.Equal(t, h.agg.shardBudget/2, full, "room kept for a close as big as its minute")
	h.push(t, flows(2000, 10, base.Add(time.Second), 1)...)
	require.NoError(t, h.agg.FlushAll())
	r := h.agg.closeRatio.Load()
	require.NotEqualValues(t, 1000, r)
	require.Equal(t, h.agg.shardBudget*1000/(1000+r), h.agg.shardLimit())
}
