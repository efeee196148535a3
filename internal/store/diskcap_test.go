package store

import (
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
