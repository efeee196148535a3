package store

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dgraph-io/badger/v4/y"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// DiskUsage is what the store's files occupy, as du(1) counts it, not their
// length: Badger creates its value log and memtable log as sparse files of
// their full length. It runs in a bubble whose clock passes the minute after
// which Badger refreshes its own measure of its files (db.Size), which the
// cap used to read.
func TestDiskUsageIsAllocatedBlocks(t *testing.T) {
	du, err := exec.LookPath("du")
	if err != nil {
		t.Skip("no du")
	}
	zstdOutsideBubble(t)
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t)
		s := startStore(t, cfg)
		put(t, s, interval(minute(1), global, 1, topn.DimSrcIP, topn.DimApp), interval(minute(2), global, 2, topn.DimSrcIP))
		require.NoError(t, s.PutCheckpoint(minute(3), make([]byte, 100<<10)))
		time.Sleep(2 * time.Minute)

		used, err := s.DiskUsage()
		require.NoError(t, err)
		entries, err := os.ReadDir(cfg.Path)
		require.NoError(t, err)
		var files []string
		var length int64
		for _, e := range entries {
			info, err := e.Info()
			require.NoError(t, err)
			length += info.Size()
			files = append(files, filepath.Join(cfg.Path, e.Name()))
		}
		out, err := exec.Command(du, append([]string{"-B1", "-c"}, files...)...).Output()
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		total, err := strconv.ParseInt(strings.Fields(lines[len(lines)-1])[0], 10, 64)
		require.NoError(t, err, "du: %s", out)

		require.Equal(t, total, used, "du -B1 -c %s", strings.Join(files, " "))
		require.Less(t, used, int64(2<<20), "a store of a few KiB")
		require.Greater(t, length, int64(40<<20), "Badger's preallocated files are long")
	})
}

// Checkpoints replaced every 10 s go to the value log (they are over 1 MiB),
// and only compaction can tell the value log GC that the old ones are dead:
// the store must compact and collect often enough that this churn stays well
// inside the smallest cap (WorkingDisk / 0.9) while the history is small.
// 20 minutes as at 2,000 flows/s over 100k hosts: a 2 MB checkpoint every
// 10 s and 2.3 MB of tables a minute. With 3 level-0 tables and the GC every
// 5 minutes it reached 194 MiB.
func TestCheckpointChurnStaysBounded(t *testing.T) {
	zstdOutsideBubble(t)
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t)
		cfg.MinFreeSpace = 0
		s := startStore(t, cfg)
		r := rand.New(rand.NewPCG(1, 2))
		checkpoint := make([]byte, 2<<20)
		var peak, history int64
		for m := range 20 {
			ivs := make([]Interval, 14)
			for i := range ivs {
				ivs[i] = Interval{Tier: TierMinute, Start: minute(m), Scope: topn.Scope{Kind: topn.ScopeExporter, Exporter: flow.Addr{10: 0xff, 11: 0xff, 15: byte(i)}},
					Tables: map[topn.Dim]*topn.Table{}}
				for _, d := range []topn.Dim{topn.DimSrcIP, topn.DimDstIP, topn.DimSrcPort, topn.DimDstPort, topn.DimApp, topn.DimInIf, topn.DimOutIf} {
					tab := benchTable(r, 1000)
					ivs[i].Tables[d], ivs[i].Total = tab, tab.Total
					history += int64(len(EncodeTable(tab)))
				}
			}
			_, _, err := s.Put(minute(m+1), ivs)
			require.NoError(t, err)
			for range 6 {
				for i := range checkpoint {
					checkpoint[i] = byte(r.Uint32())
				}
				require.NoError(t, s.PutCheckpoint(minute(m+1), checkpoint))
				time.Sleep(10 * time.Second)
				used, err := s.DiskUsage()
				require.NoError(t, err)
				peak = max(peak, used)
			}
			require.NoError(t, s.DeleteCheckpoint(minute(m+1)))
		}
		t.Logf("peak %.1f MiB for %.1f MiB of tables; floor %.1f MiB", float64(peak)/(1<<20), float64(history)/(1<<20), float64(WorkingDisk())/(1<<20))
		require.Less(t, peak, WorkingDisk()+history, "checkpoints pile up in the value log")
	})
}

// zstdOutsideBubble creates Badger's process-wide ZSTD encoder and decoder
// (level 1, as the store's options ask) outside a synctest bubble: created
// inside one, they would belong to it and fail every later test using them.
func zstdOutsideBubble(t testing.TB) {
	t.Helper()
	c, err := y.ZSTDCompress(nil, []byte("warm up"), 1)
	require.NoError(t, err)
	_, err = y.ZSTDDecompress(nil, c)
	require.NoError(t, err)
}
