package store

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// statfsFree is the free space available to an unprivileged user on path's filesystem.
func statfsFree(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %q: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// checkSpace refuses a write when the filesystem is below MinFreeSpace (see
// Configuration.MinFreeSpace for why the store must stop before the disk is full).
// A failing statfs does not stop writes: it says nothing about the space left.
func (s *Store) checkSpace() error {
	if s.freeSpace == nil {
		return nil
	}
	free, err := s.freeSpace(s.cfg.Path)
	if err != nil || free >= uint64(s.cfg.MinFreeSpace) {
		return nil
	}
	return fmt.Errorf("%w: %d bytes free, min_free_space is %d", ErrDiskFull, free, s.cfg.MinFreeSpace)
}

// wrote records the outcome of a write that reached the database (or was refused
// for space): the failure counter and gauge, and the throttled log line. It returns err.
func (s *Store) wrote(err error) error {
	if err == nil {
		s.writeFailing.Set(0)
		s.failing.ok(s.logger)
		return nil
	}
	s.writeErrors.Inc()
	s.writeFailing.Set(1)
	s.failing.failed(s.logger, err)
	return err
}

// failLog turns a run of failed writes into one warning when it starts, at most
// one a minute while it lasts (with the count), and one line when writes succeed again.
type failLog struct {
	clock func() time.Time

	mu      sync.Mutex
	failing bool
	last    time.Time
	count   int // failures since the last line
}

const failLogEvery = time.Minute

func (f *failLog) failed(l *slog.Logger, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	now := f.clock()
	if f.failing && now.Sub(f.last) < failLogEvery {
		return
	}
	f.failing, f.last = true, now
	l.Warn("store writes failing; closed minutes wait in memory and are retried", "failures", f.count, "err", err)
	f.count = 0
}

func (f *failLog) ok(l *slog.Logger) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failing {
		return
	}
	f.failing = false
	l.Info("store writes resumed", "failures_since_last_log", f.count)
	f.count = 0
}
