// Package store owns the TopN history on disk: per tier, scope, dimension and interval one
// topn.Table, per tier, scope and interval the totals, and a little metadata, in embedded Badger v4.
// Keys are versioned and sort by (tier, scope, dim, start), so a time range is one prefix scan;
// values are a compact checksummed encoding; retention is Badger's per-key TTL (docs/STORAGE.md).
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tmsd/tmsd/internal/store/tablecodec"
)

// Errors callers test with errors.Is.
var (
	// ErrBeyondRetention: an interval ended longer ago than its tier's retention; it was not written.
	ErrBeyondRetention = errors.New("interval beyond retention")
	// ErrCorrupt: a stored key or value does not decode (the same error as tablecodec.ErrCorrupt).
	ErrCorrupt = tablecodec.ErrCorrupt
	// ErrInvalid: a tier, scope, dimension, start or name the store cannot hold.
	ErrInvalid = errors.New("invalid store argument")
	// ErrNotStarted: the store is not open (before Start or after Stop).
	ErrNotStarted = errors.New("store not started")
	// ErrDiskFull: the data directory's filesystem has less than MinFreeSpace free, so
	// the write was refused. It wraps syscall.ENOSPC.
	ErrDiskFull = fmt.Errorf("store disk full: %w", syscall.ENOSPC)
)

// Tier is a resolution of the history. The numbers are stored in keys: never renumber.
type Tier uint8

// Tiers: the aggregator writes minutes, internal/rollup hours and days.
const (
	TierMinute Tier = iota + 1
	TierHour
	TierDay
	numTiers
)

// Tiers lists every tier, finest first.
var Tiers = []Tier{TierMinute, TierHour, TierDay}

var tierNames = [numTiers]string{"", "minute", "hour", "day"}

var tierDurations = [numTiers]time.Duration{0, time.Minute, time.Hour, 24 * time.Hour}

// Duration is the length of one interval of the tier (0 for an unknown tier).
func (t Tier) Duration() time.Duration {
	if !t.valid() {
		return 0
	}
	return tierDurations[t]
}

func (t Tier) valid() bool { return t >= TierMinute && t < numTiers }

func (t Tier) String() string {
	if !t.valid() {
		return fmt.Sprintf("tier(%d)", uint8(t))
	}
	return tierNames[t]
}

// MarshalText renders the tier's name (so Retention is a readable map in config files).
func (t Tier) MarshalText() ([]byte, error) {
	if !t.valid() {
		return nil, fmt.Errorf("%w: tier %d", ErrInvalid, uint8(t))
	}
	return []byte(tierNames[t]), nil
}

// UnmarshalText accepts a tier name: minute, hour or day.
func (t *Tier) UnmarshalText(b []byte) error {
	for i := TierMinute; i < numTiers; i++ {
		if strings.EqualFold(tierNames[i], string(b)) {
			*t = i
			return nil
		}
	}
	return fmt.Errorf("%w: unknown tier %q (minute, hour or day)", ErrInvalid, b)
}

// Configuration of the store.
type Configuration struct {
	// Path is the data directory.
	Path string
	// Retention per tier; a tier left out keeps its default.
	Retention map[Tier]time.Duration
	// InMemory keeps everything in memory, for tests only.
	InMemory bool
	// ValueLogGCInterval is how often Badger's value log is garbage-collected.
	ValueLogGCInterval time.Duration
	// MinFreeSpace is the free space, in bytes, below which the store refuses writes
	// (ErrDiskFull) and skips value log GC; 0 disables the check. Badger writes through
	// mmap'd sparse files (memtable WAL, value log, new tables): when the filesystem is
	// full, a store into a fresh page of one of them is a SIGBUS that kills the process
	// rather than an error (a 48 MiB tmpfs filled by Put crashed in table.CreateTable).
	// Stopping early leaves Badger room to flush its memtables (8 MiB files) and to
	// compact (L0 and base level tables, up to ~100 MiB of new tables before the old go).
	MinFreeSpace int64
}

// DefaultConfiguration returns the default configuration.
func DefaultConfiguration() Configuration {
	return Configuration{
		Path: "./data",
		Retention: map[Tier]time.Duration{
			TierMinute: 14 * 24 * time.Hour,
			TierHour:   400 * 24 * time.Hour,
			TierDay:    5 * 365 * 24 * time.Hour,
		},
		ValueLogGCInterval: time.Minute,
		MinFreeSpace:       512 << 20,
	}
}

// Dependencies of the store.
type Dependencies struct {
	Registry *prometheus.Registry // may be nil
	Logger   *slog.Logger         // may be nil: slog.Default()
	// FreeSpace reports the bytes available to the store on the filesystem of path;
	// nil means statfs(2). Tests inject a full disk through it.
	FreeSpace func(path string) (uint64, error)
	// Clock is the wall clock, for the throttling of the failing-writes log line; nil is time.Now.
	Clock func() time.Time
}

// Store is the TopN store. Its methods are safe for concurrent use; writers of the
// same interval must serialize themselves (Put replaces).
type Store struct {
	tierBytes [numTiers]atomic.Int64 // scanTierSizes
	cfg       Configuration
	retention [numTiers]time.Duration
	logger    *slog.Logger
	now       func() time.Time // wall clock the TTLs count from

	writes, writeErrors prometheus.Counter
	writeFailing        prometheus.Gauge
	freeSpace           func(path string) (uint64, error) // nil: no free-space check
	failing             failLog

	mu   sync.RWMutex // guards db; write-held by Start and Stop only
	db   *badger.DB
	stop chan struct{}
	wg   sync.WaitGroup
}

// New validates the configuration and returns a store; it opens nothing.
func New(cfg Configuration, deps Dependencies) (*Store, error) {
	s := &Store{cfg: cfg, logger: deps.Logger, now: time.Now}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.logger = s.logger.With("component", "store")
	if cfg.MinFreeSpace < 0 {
		return nil, fmt.Errorf("%w: min free space must be >= 0, got %d", ErrInvalid, cfg.MinFreeSpace)
	}
	// An in-memory store has no filesystem to watch unless a test gives it one.
	if cfg.MinFreeSpace > 0 && (!cfg.InMemory || deps.FreeSpace != nil) {
		s.freeSpace = deps.FreeSpace
		if s.freeSpace == nil {
			s.freeSpace = statfsFree
		}
	}
	s.failing.clock = deps.Clock
	if s.failing.clock == nil {
		s.failing.clock = time.Now
	}
	if !cfg.InMemory && cfg.Path == "" {
		return nil, fmt.Errorf("%w: store path is empty", ErrInvalid)
	}
	if !cfg.InMemory && cfg.ValueLogGCInterval <= 0 {
		return nil, fmt.Errorf("%w: value log GC interval must be positive, got %s", ErrInvalid, cfg.ValueLogGCInterval)
	}
	def := DefaultConfiguration().Retention
	for _, t := range Tiers {
		s.retention[t] = def[t]
	}
	for t, d := range cfg.Retention {
		if !t.valid() {
			return nil, fmt.Errorf("%w: retention for unknown tier %d", ErrInvalid, uint8(t))
		}
		if d <= 0 {
			return nil, fmt.Errorf("%w: %s retention must be positive, got %s", ErrInvalid, t, d)
		}
		s.retention[t] = d
	}

	s.writes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tmsd_store_writes_total",
		Help: "Intervals written to the TopN store.",
	})
	s.writeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tmsd_store_write_errors_total",
		Help: "Failed writes to the TopN store (intervals, checkpoints and metadata), disk full included.",
	})
	s.writeFailing = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tmsd_store_write_failing",
		Help: "1 while the last write to the TopN store failed (disk full or a write error), else 0.",
	})
	if deps.Registry != nil {
		collectors := []prometheus.Collector{s.writes, s.writeErrors, s.writeFailing}
		if s.freeSpace != nil {
			collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "tmsd_store_free_bytes",
				Help: "Bytes free on the store's filesystem; writes stop below min_free_space.",
			}, func() float64 {
				free, err := s.freeSpace(s.cfg.Path)
				if err != nil {
					return -1
				}
				return float64(free)
			}))
		}
		if !cfg.InMemory {
			collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "tmsd_store_disk_bytes",
				Help: "Bytes the store's files occupy on disk (allocated blocks, not the length of Badger's preallocated files): what store.max_disk caps.",
			}, func() float64 {
				n, err := s.DiskUsage()
				if err != nil {
					return 0
				}
				return float64(n)
			}))
		}
		for t := TierMinute; t < numTiers; t++ {
			collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "tmsd_store_tier_bytes",
				Help:        "Estimated on-disk bytes of a tier's tables and totals: the LSM tables whose keys all belong to it (Badger's EstimateSize; tables straddling two tiers are left out).",
				ConstLabels: prometheus.Labels{"tier": t.String()},
			}, func() float64 { return s.tierSize(t) }))
		}
		for _, kind := range []string{"lsm", "vlog"} {
			collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "tmsd_store_size_bytes",
				Help:        "Length of the TopN store's Badger files as Badger reports them, by kind (LSM tables, value log), refreshed every minute; the value log's counts its preallocation (see tmsd_store_disk_bytes).",
				ConstLabels: prometheus.Labels{"kind": kind},
			}, func() float64 { return s.size(kind) }))
		}
		for i, c := range collectors {
			if err := deps.Registry.Register(c); err != nil {
				for _, r := range collectors[:i] {
					deps.Registry.Unregister(r)
				}
				return nil, fmt.Errorf("register store metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Retention returns how long intervals of tier t are kept after they end.
func (s *Store) Retention(t Tier) time.Duration {
	if !t.valid() {
		return 0
	}
	return s.retention[t]
}

// Start opens the database and starts the value log GC.
func (s *Store) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		return errors.New("store already started")
	}
	db, err := badger.Open(badgerOptions(s.cfg, s.logger))
	if err != nil {
		return fmt.Errorf("open store at %q: %w", s.cfg.Path, err)
	}
	s.db = db
	if !s.cfg.InMemory {
		s.stop = make(chan struct{})
		s.wg.Add(1)
		go s.gcLoop(db, s.stop)
	}
	return nil
}

// Stop stops the GC and closes the database. It is a no-op on a stopped store.
func (s *Store) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	if s.stop != nil {
		close(s.stop)
		s.wg.Wait()
		s.stop = nil
	}
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// badgerOptions keeps the process well under 1 GiB: Badger's defaults (five 64 MiB
// memtables, a 256 MiB block cache, 1 GiB value log files) are sized for servers.
// Tables (a few KiB to tens of KiB) stay under the value threshold, so they live in
// the LSM tree and a range scan reads them in key order without value log lookups.
// The memtables, the level-0 tables and the value log file are also the disk a
// store takes when it holds little (WorkingDisk), which a store.max_disk must
// leave room for: with 3 × 16 MiB memtables, 3 level-0 tables and 128 MiB value
// log files the smallest cap that works was 333 MB, with 2 × 8 MiB, one and
// 16 MiB it is 82 MB. One level-0 table compacts after every flush, which tells
// the value log GC (every minute) soon that old checkpoints are dead: at 2,000
// flows/s over 100k hosts the store stayed within 15 to 50 MiB where, with
// three, it passed 100 MB in 5 minutes. The cost: a minute of 50 scopes of 7
// K=1000 tables (8.7 MB) takes a median 0.35 s to write instead of 0.23 s
// (BenchmarkFinalWrite, on a loaded 2-core machine), once a minute off the
// ingest path; memtable memory drops from 48 to 16 MiB. 8 MiB memtables keep
// Badger's transaction limit (15 %, 1.2 MiB) above its 1 MiB value threshold.
func badgerOptions(cfg Configuration, logger *slog.Logger) badger.Options {
	path := cfg.Path
	if cfg.InMemory {
		path = ""
	}
	if logger == nil {
		logger = slog.Default()
	}
	return badger.DefaultOptions(path).
		WithInMemory(cfg.InMemory).
		WithLogger(badgerLogger{logger}).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false).
		WithCompression(options.ZSTD).
		WithZSTDCompressionLevel(1).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(1).
		WithNumLevelZeroTablesStall(10).
		WithBaseTableSize(8 << 20).
		WithBaseLevelSize(64 << 20).
		WithBlockSize(16 << 10).
		WithBlockCacheSize(64 << 20).
		WithIndexCacheSize(32 << 20).
		WithNumCompactors(2).
		WithValueLogFileSize(16 << 20)
}

// tierScanInterval is how often the tier sizes (tmsd_store_tier_bytes) are measured.
const tierScanInterval = 5 * time.Minute

// gcLoop runs the value log GC every interval, as long as it rewrites a file.
func (s *Store) gcLoop(db *badger.DB, stop <-chan struct{}) {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.ValueLogGCInterval)
	defer tick.Stop()
	var scanned time.Time
	for {
		// The scan walks every key: at most every tierScanInterval.
		if now := time.Now(); now.Sub(scanned) >= tierScanInterval {
			s.scanTierSizes(db)
			scanned = now
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for s.gcOnce(db) {
			select {
			case <-stop:
				return
			default:
			}
		}
	}
}

// gcOnce runs one value log GC pass and reports whether it rewrote a file.
// It does not run short of space: a pass writes the live values it moves.
func (s *Store) gcOnce(db *badger.DB) bool {
	if s.checkSpace() != nil {
		return false
	}
	err := db.RunValueLogGC(0.5)
	if err != nil && !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
		s.logger.Warn("value log GC failed", "error", err)
	}
	return err == nil
}

// size reports a Badger file size for the metrics (0 when closed).
// tierSize is a tier's size as of the last scanTierSizes.
func (s *Store) tierSize(t Tier) float64 { return float64(s.tierBytes[t].Load()) }

// scanTierSizes sums, per tier, the keys and values of its tables and totals
// as Badger stores them before compression (Item.EstimatedSize). It walks
// keys only (values stay on disk): Badger's own EstimateSize counts whole LSM
// files, and one file often holds keys of several tiers.
func (s *Store) scanTierSizes(db *badger.DB) {
	var sizes [numTiers]int64
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		for _, space := range []byte{spaceTable, spaceTotals} {
			opts.Prefix = []byte{space, keyVersion}
			it := txn.NewIterator(opts)
			for it.Rewind(); it.Valid(); it.Next() {
				if k := it.Item().Key(); len(k) > 2 && k[2] < byte(numTiers) {
					sizes[k[2]] += it.Item().EstimatedSize()
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return
	}
	for t := range sizes {
		s.tierBytes[t].Store(sizes[t])
	}
}

func (s *Store) size(kind string) float64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0
	}
	lsm, vlog := s.db.Size()
	if kind == "lsm" {
		return float64(lsm)
	}
	return float64(vlog)
}

// badgerLogger routes Badger's warnings and errors to slog and drops its chatty
// info and debug lines.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
