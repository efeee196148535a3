package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/topn"
)

func checkpoints(t *testing.T, s *Store) map[time.Time][]byte {
	t.Helper()
	out := map[time.Time][]byte{}
	require.NoError(t, s.Checkpoints(func(start time.Time, v []byte) error {
		out[start] = bytes.Clone(v)
		return nil
	}))
	return out
}

func TestCheckpointReplaceAndDelete(t *testing.T) {
	old := valueChunk
	valueChunk = 4
	t.Cleanup(func() { valueChunk = old })
	s := startStore(t, testConfig(t))
	require.Empty(t, checkpoints(t, s))

	require.NoError(t, s.PutCheckpoint(minute(1), []byte("0123456789"))) // three chunks
	require.NoError(t, s.PutCheckpoint(minute(0), []byte("a")))
	require.NoError(t, s.PutCheckpoint(minute(2), []byte{}))
	require.Equal(t, map[time.Time][]byte{minute(0): []byte("a"), minute(1): []byte("0123456789"), minute(2): {}}, checkpoints(t, s))

	// A shorter value replaces the longer one entirely: no stale chunk survives.
	require.NoError(t, s.PutCheckpoint(minute(1), []byte("xyz")))
	require.Equal(t, []byte("xyz"), checkpoints(t, s)[minute(1)])
	require.NoError(t, s.PutCheckpoint(minute(1), []byte("abcdefghi")))
	require.Equal(t, []byte("abcdefghi"), checkpoints(t, s)[minute(1)])

	require.NoError(t, s.DeleteCheckpoint(minute(1)))
	require.NoError(t, s.DeleteCheckpoint(minute(7)), "deleting nothing is fine")
	require.Equal(t, map[time.Time][]byte{minute(0): []byte("a"), minute(2): {}}, checkpoints(t, s))

	require.ErrorIs(t, s.PutCheckpoint(minute(0).Add(time.Second), nil), ErrInvalid)
	stop := errors.New("stop")
	n := 0
	require.ErrorIs(t, s.Checkpoints(func(time.Time, []byte) error { n++; return stop }), stop)
	require.Equal(t, 1, n)
}

func TestFinalWrite(t *testing.T) {
	s := startStore(t, testConfig(t))
	now := minute(120)
	put(t, s, interval(minute(5), global, 1, topn.DimApp))
	require.NoError(t, s.PutCheckpoint(minute(5), []byte("open minute")))
	require.NoError(t, s.PutCheckpoint(minute(6), []byte("next minute")))

	final := []Interval{
		interval(minute(5), global, 9, topn.DimApp, topn.DimSrcIP),
		interval(minute(5), protoTCP, 4, topn.DimDstPort),
		interval(minute(5), exporterA, 3),
	}
	require.NoError(t, s.BeginFinal(final))
	require.Equal(t, map[time.Time][]byte{minute(6): []byte("next minute")}, checkpoints(t, s),
		"the redo record replaces the minute's checkpoint in the same transaction")
	type rec struct {
		tier  Tier
		start time.Time
		ivs   []Interval
	}
	finals := func() []rec {
		var out []rec
		require.NoError(t, s.Finals(func(tier Tier, start time.Time, ivs []Interval, err error) error {
			require.NoError(t, err)
			out = append(out, rec{tier, start, ivs})
			return nil
		}))
		return out
	}
	require.Equal(t, []rec{{TierMinute, minute(5), final}}, finals())

	for _, iv := range final {
		require.NoError(t, s.PutInterval(now, iv))
	}
	got, ok, err := s.Get(TierMinute, global, topn.DimSrcIP, minute(5))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, final[0].Tables[topn.DimSrcIP], got)
	require.NoError(t, s.EndFinal(TierMinute, minute(5)))
	require.Empty(t, finals())

	require.ErrorIs(t, s.BeginFinal(nil), ErrInvalid)
	require.ErrorIs(t, s.BeginFinal([]Interval{interval(minute(1), global, 1), interval(minute(2), global, 1)}), ErrInvalid)
	require.ErrorIs(t, s.PutInterval(now, interval(minute(1).Add(time.Second), global, 1)), ErrInvalid)
	require.ErrorIs(t, s.PutInterval(minute(60*24*365), interval(minute(1), global, 1)), ErrBeyondRetention)
}

// A redo record that does not decode is reported, with the others, not fatal.
func TestCorruptFinal(t *testing.T) {
	s := startStore(t, testConfig(t))
	good := []Interval{interval(minute(2), global, 2, topn.DimApp)}
	require.NoError(t, s.BeginFinal([]Interval{interval(minute(1), global, 1, topn.DimApp)}))
	require.NoError(t, s.BeginFinal(good))
	require.NoError(t, s.update(func(txn *badger.Txn) error {
		chunk := binary.BigEndian.AppendUint16(finalKey(TierMinute, minute(1).Unix()), 0)
		item, err := txn.Get(chunk)
		require.NoError(t, err)
		v, err := item.ValueCopy(nil)
		require.NoError(t, err)
		v[len(v)/2] ^= 0x40
		return txn.Set(chunk, v)
	}))
	var errs []error
	var ok [][]Interval
	require.NoError(t, s.Finals(func(_ Tier, _ time.Time, ivs []Interval, err error) error {
		if err != nil {
			errs = append(errs, err)
		} else {
			ok = append(ok, ivs)
		}
		return nil
	}))
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], ErrCorrupt)
	require.Equal(t, [][]Interval{good}, ok)
}

// A redo record bigger than a value chunk is stored in chunks and read back
// whole; one an older tmsd wrote unchunked (the bare key) still reads, and
// the next BeginFinal or EndFinal of its minute removes it.
func TestFinalChunks(t *testing.T) {
	old := valueChunk
	valueChunk = 40
	t.Cleanup(func() { valueChunk = old })
	s := startStore(t, testConfig(t))
	big := []Interval{interval(minute(1), global, 40, topn.DimApp, topn.DimSrcIP), interval(minute(1), exporterA, 30, topn.DimApp)}
	require.Greater(t, len(encodeFinal(big)), 4*valueChunk)
	legacy := []Interval{interval(minute(2), global, 3, topn.DimApp)}
	require.NoError(t, s.BeginFinal(big))
	require.NoError(t, s.update(func(txn *badger.Txn) error {
		return txn.Set(finalKey(TierMinute, minute(2).Unix()), encodeFinal(legacy))
	}))
	read := func() map[time.Time][]Interval {
		out := map[time.Time][]Interval{}
		require.NoError(t, s.Finals(func(_ Tier, start time.Time, ivs []Interval, err error) error {
			require.NoError(t, err)
			out[start] = ivs
			return nil
		}))
		return out
	}
	require.Equal(t, map[time.Time][]Interval{minute(1): big, minute(2): legacy}, read())

	// A shorter record replaces a longer one and the legacy one whole.
	small := []Interval{interval(minute(1), global, 1, topn.DimApp)}
	require.NoError(t, s.BeginFinal(small))
	require.NoError(t, s.BeginFinal(legacy))
	require.Equal(t, map[time.Time][]Interval{minute(1): small, minute(2): legacy}, read())
	require.NoError(t, s.EndFinal(TierMinute, minute(1)))
	require.NoError(t, s.EndFinal(TierMinute, minute(2)))
	require.Empty(t, read())
	var keys int
	require.NoError(t, s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{spaceFinal, keyVersion}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys++
		}
		return nil
	}))
	require.Zero(t, keys, "no chunk left")
}

// FuzzDecodeFinal: no input panics; what decodes re-encodes to itself.
func FuzzDecodeFinal(f *testing.F) {
	ivs := []Interval{interval(minute(3), global, 2, topn.DimApp, topn.DimPort), interval(minute(3), exporterA, 1)}
	b := encodeFinal(ivs)
	f.Add(b)
	f.Add(b[:len(b)-4])
	f.Add(encodeFinal(ivs[1:]))
	f.Fuzz(func(t *testing.T, b []byte) {
		sealed := binary.LittleEndian.AppendUint32(bytes.Clone(b), crc32.Checksum(b, castagnoli))
		for _, in := range [][]byte{b, sealed} {
			got, err := decodeFinal(in, TierMinute, minute(3))
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error does not wrap ErrCorrupt: %v", err)
				}
				continue
			}
			if len(got) > 0 && !bytes.Equal(encodeFinal(got), in) {
				// Dimensions are re-encoded in order, so only canonical input round-trips.
				if again, err := decodeFinal(encodeFinal(got), TierMinute, minute(3)); err != nil || len(again) != len(got) {
					t.Fatalf("re-encoding changed the record: %v", err)
				}
			}
		}
	})
}

// diskFull is an injectable free-space probe.
type diskFull struct{ free atomic.Uint64 }

func (d *diskFull) probe(string) (uint64, error) { return d.free.Load(), nil }

// countingHandler counts log records by level.
type countingHandler struct{ warn, info atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	switch r.Level {
	case slog.LevelWarn:
		h.warn.Add(1)
	case slog.LevelInfo:
		h.info.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// Below MinFreeSpace every write is refused with an error wrapping ENOSPC,
// counted, shown by the gauge and logged once per minute; reads go on; writes
// resume when space returns.
func TestDiskFullRefusesWrites(t *testing.T) {
	var disk diskFull
	disk.free.Store(1 << 30)
	var clockNs atomic.Int64
	clockNs.Store(minute(0).UnixNano())
	logs := &countingHandler{}
	reg := prometheus.NewRegistry()
	cfg := DefaultConfiguration()
	cfg.InMemory = true
	cfg.MinFreeSpace = 100 << 20
	s, err := New(cfg, Dependencies{Registry: reg, Logger: slog.New(logs), FreeSpace: disk.probe,
		Clock: func() time.Time { return time.Unix(0, clockNs.Load()) }})
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() { require.NoError(t, s.Stop()) })
	put(t, s, interval(minute(0), global, 1, topn.DimApp))
	require.EqualValues(t, 1<<30, gauge(t, reg, "tmsd_store_free_bytes"))

	disk.free.Store(100<<20 - 1)
	_, _, err = s.Put(minute(120), []Interval{interval(minute(1), global, 1)})
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.ErrorIs(t, err, ErrDiskFull)
	for _, err := range []error{
		s.PutInterval(minute(120), interval(minute(1), global, 1)),
		s.PutMeta("x", []byte("y")),
		s.PutCheckpoint(minute(1), []byte("c")),
		s.DeleteCheckpoint(minute(1)),
		s.BeginFinal([]Interval{interval(minute(1), global, 1)}),
		s.EndFinal(TierMinute, minute(1)),
	} {
		require.ErrorIs(t, err, syscall.ENOSPC)
	}
	_, ok, err := s.Get(TierMinute, global, topn.DimApp, minute(0))
	require.NoError(t, err)
	require.True(t, ok, "reads go on")
	require.EqualValues(t, 7, gauge(t, reg, "tmsd_store_write_errors_total"))
	require.EqualValues(t, 1, gauge(t, reg, "tmsd_store_write_failing"))
	require.EqualValues(t, 1, logs.warn.Load(), "one line for a run of failures")
	clockNs.Add(int64(time.Minute))
	require.Error(t, s.PutMeta("x", nil))
	require.EqualValues(t, 2, logs.warn.Load(), "and one a minute while it lasts")

	disk.free.Store(100 << 20)
	require.NoError(t, s.PutInterval(minute(120), interval(minute(1), global, 1)))
	require.EqualValues(t, 0, gauge(t, reg, "tmsd_store_write_failing"))
	require.EqualValues(t, 1, logs.info.Load(), "resumed")
	require.False(t, s.gcOnce(s.db), "in memory: nothing to collect")
}

// gauge reads one unlabelled gauge or counter from a registry.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			m := f.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A real full filesystem: a small tmpfs (root only). Without the free-space
// check Badger dies of SIGBUS here; with it, writes fail with ENOSPC before the
// filesystem is full, the process lives, and writes resume once space is freed.
func TestRealDiskFullOnTmpfs(t *testing.T) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("needs root to mount a tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	cfg := DefaultConfiguration()
	cfg.Path = filepath.Join(mnt, "db")
	cfg.MinFreeSpace = 40 << 20
	s, err := New(cfg, Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() { _ = s.Stop() })
	// Fill the filesystem to just above the floor with a file we can remove.
	free, err := statfsFree(mnt)
	require.NoError(t, err)
	filler := filepath.Join(mnt, "filler")
	require.NoError(t, os.WriteFile(filler, make([]byte, free-uint64(cfg.MinFreeSpace)-(4<<20)), 0o600))

	big := func(i int) Interval {
		iv := interval(minute(i), global, uint64(i+1))
		for _, d := range []topn.Dim{topn.DimSrcIP, topn.DimDstIP, topn.DimApp} {
			iv.Tables[d] = table(uint64(i+7), 2000)
		}
		return iv
	}
	i := 0
	for ; i < 1000; i++ {
		if err = s.PutInterval(minute(i+2), big(i)); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, syscall.ENOSPC, "after %d intervals", i)
	require.Positive(t, i)
	require.ErrorIs(t, s.PutCheckpoint(minute(i), make([]byte, 2<<20)), syscall.ENOSPC)

	require.NoError(t, os.Remove(filler))
	require.NoError(t, s.PutInterval(minute(i+2), big(i)))
	require.NoError(t, s.Stop())
	s2, err := New(cfg, Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, s2.Start())
	defer s2.Stop()
	n := 0
	require.NoError(t, s2.Totals(TierMinute, global, minute(0), minute(i+1), func(time.Time, topn.Counters) error { n++; return nil }))
	require.Equal(t, i+1, n, "every interval written before and after the full disk is there")
}

// TestCheckpointPassIsAtomic: a pass killed after some of its values were
// written (their versions stored, the pass not recorded) leaves every minute
// as of the previous pass, with its position; the next pass drops the
// orphans rather than adopt them.
func TestCheckpointPassIsAtomic(t *testing.T) {
	old := valueChunk
	valueChunk = 4
	t.Cleanup(func() { valueChunk = old })
	s := startStore(t, testConfig(t))
	require.NoError(t, s.PutCheckpoints([]Checkpoint{{minute(1), []byte("one@1")}, {minute(2), []byte("two@1")}}, []byte("p1")))
	require.Equal(t, map[time.Time][]byte{minute(1): []byte("one@1"), minute(2): []byte("two@1")}, checkpoints(t, s))

	// Pass 2 dies after writing minute 2 (and a new minute 3).
	for _, c := range []Checkpoint{{minute(2), []byte("two@2, longer")}, {minute(3), []byte("three@2")}} {
		require.NoError(t, s.update(func(txn *badger.Txn) error { return putChunked(txn, checkpointKey(c.Start.Unix(), 2), c.Value) }))
	}
	require.Equal(t, map[time.Time][]byte{minute(1): []byte("one@1"), minute(2): []byte("two@1")}, checkpoints(t, s))
	pos, err := s.CheckpointPosition()
	require.NoError(t, err)
	require.Equal(t, []byte("p1"), pos)

	// The next pass rewrites minute 1 only: 2 stays at pass 1, 3 never was.
	require.NoError(t, s.PutCheckpoints([]Checkpoint{{minute(1), []byte("one@2")}}, []byte("p2")))
	require.Equal(t, map[time.Time][]byte{minute(1): []byte("one@2"), minute(2): []byte("two@1")}, checkpoints(t, s))
	pos, err = s.CheckpointPosition()
	require.NoError(t, err)
	require.Equal(t, []byte("p2"), pos)

	// A pass replaces older versions, an older tmsd's unversioned key too.
	require.NoError(t, s.update(func(txn *badger.Txn) error {
		return putChunked(txn, checkpointPrefix(minute(4).Unix()), []byte("legacy"))
	}))
	require.Equal(t, []byte("legacy"), checkpoints(t, s)[minute(4)])
	require.NoError(t, s.PutCheckpoints([]Checkpoint{{minute(4), []byte("four")}, {minute(2), []byte("two@3")}}, nil))
	require.Equal(t, map[time.Time][]byte{minute(1): []byte("one@2"), minute(2): []byte("two@3"), minute(4): []byte("four")}, checkpoints(t, s))
	var keys int
	require.NoError(t, s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: checkpointPrefix(-1)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys++
		}
		return nil
	}))
	require.Equal(t, 2+2+1, keys, "one version each, in 4-byte chunks: one@2, two@3, four")
	require.NoError(t, s.DeleteCheckpoint(minute(2)))
	require.NotContains(t, checkpoints(t, s), minute(2))
}
