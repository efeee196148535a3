package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/pcapsrc"
	"github.com/tmsd/tmsd/internal/store"
)

// importOptions are `tmsd import`'s own flags.
type importOptions struct {
	force bool // import again files the store has imported before
	list  bool // print the ledger, import nothing
}

// importFile is one file named on the command line.
type importFile struct {
	path string
	sha  string
	size int64
	dup  *importFile // same contents as this earlier file: not imported again

	entry     *importEntry // its ledger entry, once begun
	prior     *importRun   // the earlier run a new import doubles (--force)
	datagrams uint64       // flow export, decoded
	notExport uint64       // UDP datagrams that were not flow export
	flows     uint64
	minutes   map[flow.Addr]map[int64]bool // the minutes of its flows, per exporter
	readErr   error
	read      bool // to its end
	packets   uint64
}

// importFiles runs captured export datagrams through the same decode →
// aggregate → store path as live traffic. The exporter is each datagram's source
// address and time is the capture's: the flusher's clock follows the capture.
//
// Every file is checked against the store's import ledger before anything is
// written: if one was imported before (same SHA-256), the whole command is
// refused unless --force. A file named twice (same contents) is imported once.
// A file is recorded once its minutes are flushed to the store.
func importFiles(cfg Config, paths []string, opt importOptions, out, errOut io.Writer) error {
	files, err := digestFiles(paths)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.LogLevel)
	var captureNow atomic.Int64
	l := newLedger()
	p, err := newPipeline(cfg, logger, func() time.Time { return time.Unix(0, captureNow.Load()) }, l.tap)
	if err != nil {
		return err
	}
	if err := p.startCore(); err != nil {
		p.stop()
		return err
	}
	if err := l.load(p.store); err != nil {
		return errors.Join(err, p.stop())
	}
	if err := checkLedger(l, files, opt.force, out); err != nil {
		return errors.Join(err, p.stop())
	}

	sel := pcapsrc.NewSelector(flowPorts(cfg)...)
	var (
		first, last time.Time
		recs        []flow.Record
		readErr     error
	)
	for _, f := range files {
		if f.dup != nil {
			continue
		}
		f.minutes = map[flow.Addr]map[int64]bool{}
		st, err := pcapsrc.Read(f.path, func(d pcapsrc.Datagram) error {
			if sel.Export(d) == flow.ProtoUnknown {
				f.notExport++
				return nil
			}
			if f.entry == nil { // recorded as begun before anything of it is decoded
				run := importRun{File: f.path, Started: time.Now().UTC(), Forced: f.prior != nil}
				e, err := l.begin(f.sha, f.size, run)
				if err != nil {
					return err
				}
				f.entry = e
			}
			if d.Time.UnixNano() > captureNow.Load() {
				captureNow.Store(d.Time.UnixNano())
			}
			// The time span is the flow export's, not that of the other
			// packets a capture holds (a raw trace, a host's DNS).
			if first.IsZero() || d.Time.Before(first) {
				first = d.Time
			}
			if d.Time.After(last) {
				last = d.Time
			}
			f.datagrams++
			recs, _ = p.decoder.Decode(d.Src.Addr(), d.Payload, d.Time, recs[:0])
			f.flows += uint64(len(recs))
			for i := range recs {
				m := f.minutes[recs[i].Exporter]
				if m == nil {
					m = map[int64]bool{}
					f.minutes[recs[i].Exporter] = m
				}
				m[p.agg.Minute(&recs[i]).Unix()] = true
			}
			p.enrich(recs)
			pushAll(p.ring, recs)
			return nil
		})
		f.packets = st.Packets
		if err != nil {
			f.readErr, readErr = err, err
			break
		}
		f.read = true
	}
	// Every minute into the store, then the ledger: a run is finished only
	// when what it wrote is there.
	flushErr := errors.Join(p.agg.Sync(5*time.Minute), p.agg.FlushAll())
	var datagrams, decoded, notExport uint64
	var empty []string
	for _, f := range files {
		datagrams, decoded, notExport = datagrams+f.datagrams, decoded+f.flows, notExport+f.notExport
		if f.read && f.entry == nil {
			empty = append(empty, noExportLine(f))
		}
	}
	// Nothing at all was flow export: one line per file, and a failure.
	nothing := readErr == nil && datagrams == 0 && len(empty) > 0
	recordErr := recordRuns(l, files, flushErr, !nothing, out, errOut)
	stopErr := p.stop()
	if err := errors.Join(readErr, flushErr, recordErr, stopErr); err != nil {
		return err
	}
	if nothing {
		return errors.New(strings.Join(empty, "\n"))
	}
	errs := map[string]uint64{}
	exporters := p.decoder.Exporters()
	for _, e := range exporters {
		for reason, n := range e.Errors {
			errs[reason] += n
		}
	}
	skipped := p.agg.SkippedFlows()
	fmt.Fprintf(out, "files:      %d\n", len(files))
	fmt.Fprintf(out, "datagrams:  %d flow export, %d not flow export\n", datagrams, notExport)
	fmt.Fprintf(out, "flows:      %d decoded, %d stored, %d skipped (older than the %s retention)\n",
		decoded, decoded-skipped, skipped, cfg.Retention.Minute)
	fmt.Fprintf(out, "exporters:  %d\n", len(exporters))
	reasons := make([]string, 0, len(errs))
	for r := range errs {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	fmt.Fprint(out, "errors:    ")
	if len(reasons) == 0 {
		fmt.Fprint(out, " none")
	}
	for _, r := range reasons {
		fmt.Fprintf(out, " %s=%d", r, errs[r])
	}
	fmt.Fprintln(out)
	if !first.IsZero() {
		fmt.Fprintf(out, "time span:  %s to %s (%s)\n", first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339), last.Sub(first).Round(time.Second))
	}
	return nil
}

// digestFiles reads each file once for its SHA-256, before the store is opened:
// a missing file stops the command before anything is written.
func digestFiles(paths []string) ([]*importFile, error) {
	files := make([]*importFile, 0, len(paths))
	seen := map[string]*importFile{}
	for _, path := range paths {
		fh, err := os.Open(path)
		if err != nil {
			return nil, err // names the path
		}
		if fi, err := fh.Stat(); err != nil || !fi.Mode().IsRegular() {
			fh.Close()
			if err == nil && fi.IsDir() {
				return nil, fmt.Errorf("%s is a directory: name the capture files in it", path)
			}
			return nil, fmt.Errorf("%s is not a regular file: tmsd import reads a capture twice (its SHA-256, to refuse a repeat, then its datagrams); save it to a file first (gzipped is fine)", path)
		}
		h := sha256.New()
		n, err := io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		f := &importFile{path: path, sha: hex.EncodeToString(h.Sum(nil)), size: n}
		f.dup = seen[f.sha]
		if f.dup == nil {
			seen[f.sha] = f
		}
		files = append(files, f)
	}
	return files, nil
}

// checkLedger refuses the command when a file was imported before, one line
// per such file, unless force: then it says what it imports again.
func checkLedger(l *ledger, files []*importFile, force bool, out io.Writer) error {
	var refused []string
	for _, f := range files {
		if f.dup != nil {
			fmt.Fprintf(out, "%s: same contents as %s (sha256 %s): imported once\n", f.path, f.dup.path, shortSHA(f.sha))
			continue
		}
		e := l.entry(f.sha)
		if e == nil {
			continue
		}
		if f.prior = e.prior(); f.prior == nil {
			continue // earlier runs stopped before storing anything
		}
		r := f.prior
		switch {
		case !force:
			refused = append(refused, refusal(f, r))
		case r.done():
			fmt.Fprintf(out, "%s: imported before, at %s%s (%s); --force: importing it again, so its traffic counts %d times\n",
				f.path, stamp(r.Started), as(f, r), r.covered(), e.finished()+1)
		default:
			fmt.Fprintf(out, "%s: an import of it begun at %s did not finish after storing part of it; --force: importing it again, so that part counts twice\n",
				f.path, stamp(r.Started))
		}
	}
	switch {
	case len(refused) == 0:
		return nil
	case len(files) == 1:
		return errors.New(refused[0])
	}
	return fmt.Errorf("%s\nnothing imported: %d of %d files were imported before (--force imports them again)",
		strings.Join(refused, "\n"), len(refused), len(files))
}

// refusal is the one line saying why f is not imported again.
func refusal(f *importFile, r *importRun) string {
	if r.done() {
		return fmt.Sprintf("%s was imported into this store before, at %s%s (sha256 %s: %s): not importing it twice; --force imports it again",
			f.path, stamp(r.Started), as(f, r), shortSHA(f.sha), r.covered())
	}
	why := "killed?"
	if r.Failed != "" {
		why = r.Failed
	}
	return fmt.Sprintf("%s: an import of it begun at %s%s (sha256 %s) did not finish (%s) after storing part of it (%s): importing it again would count that part twice; --force imports it anyway",
		f.path, stamp(r.Started), as(f, r), shortSHA(f.sha), why, r.covered())
}

// as names the earlier run's file when it had another name.
func as(f *importFile, r *importRun) string {
	if r.File == f.path {
		return ""
	}
	return " as " + r.File
}

// recordRuns records each file's run: finished when the minutes are flushed
// (flushErr nil) and the file was read to its end, otherwise failed with the
// reason. It prints one line per file, and warns of overlaps with other imports.
func recordRuns(l *ledger, files []*importFile, flushErr error, printEmpty bool, out, errOut io.Writer) error {
	var errs []error
	for _, f := range files {
		if f.entry == nil {
			if f.read && printEmpty {
				fmt.Fprintln(out, noExportLine(f))
			}
			continue
		}
		cover := l.coverage(f.minutes)
		failed := f.readErr
		if failed == nil {
			failed = flushErr
		}
		err := l.finish(f.entry, func(r *importRun) {
			r.Datagrams, r.NotExport, r.Flows, r.Exporters = f.datagrams, f.notExport, f.flows, cover
			if failed != nil {
				r.Failed = failed.Error()
			} else {
				r.Finished = time.Now().UTC()
			}
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r := f.entry.Runs[len(f.entry.Runs)-1]
		if failed != nil {
			fmt.Fprintf(out, "%s: not finished (%s): recorded as such: %s\n", f.path, r.covered(), failed)
			continue
		}
		fmt.Fprintf(out, "%s: %s; recorded (sha256 %s)\n", f.path, r.covered(), shortSHA(f.sha))
		if runs, addrs, lo, hi := l.overlaps(f.sha, cover); len(runs) > 0 {
			names := make([]string, len(runs))
			for i, o := range runs {
				names[i] = fmt.Sprintf("%s (imported %s)", o.File, stamp(o.Started))
			}
			what := "exporter"
			if len(addrs) > 1 {
				what = "exporters"
			}
			as := make([]string, len(addrs))
			for i, a := range addrs {
				as[i] = a.String()
			}
			fmt.Fprintf(errOut, "tmsd import: warning: %s: %s %s, %s, also written by %s: a different file, so imported; datagrams the captures share count twice\n",
				f.path, what, strings.Join(as, ", "), minuteSpan(lo, hi), strings.Join(names, ", "))
		}
	}
	return errors.Join(errs...)
}

func noExportLine(f *importFile) string {
	return fmt.Sprintf("%s: no flow export: %d UDP datagrams of %d packets, none a NetFlow v5/v9, IPFIX or sFlow v5 datagram; nothing imported",
		f.path, f.notExport, f.packets)
}

// flowPorts are the ports of the configured listen addresses: a capture of an
// exporter sending to this collector's port is flow export by that alone.
func flowPorts(cfg Config) []uint16 {
	var ports []uint16
	for _, a := range append(append([]string(nil), cfg.NetFlow...), cfg.SFlow...) {
		if _, p, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil && n != 0 {
				ports = append(ports, uint16(n))
			}
		}
	}
	return ports
}

// listImports prints the store's import ledger, oldest first.
func listImports(cfg Config, out io.Writer) error {
	if _, err := os.Stat(cfg.Data); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "no import recorded in %s (no store there)\n", cfg.Data)
		return nil
	}
	stCfg := store.DefaultConfiguration()
	stCfg.Path = cfg.Data
	st, err := store.New(stCfg, store.Dependencies{Logger: newLogger(cfg.LogLevel)})
	if err != nil {
		return err
	}
	if err := st.Start(); err != nil {
		return err
	}
	l := newLedger()
	err = l.load(st)
	if err == nil {
		runs := l.runs()
		if len(runs) == 0 {
			fmt.Fprintf(out, "no import recorded in %s\n", cfg.Data)
		}
		for _, lr := range runs {
			fmt.Fprintf(out, "%s  %s  sha256 %s  %s (%s)\n", stamp(lr.run.Started), lr.run.File, shortSHA(lr.entry.SHA256), lr.run.covered(), lr.run.state())
		}
	}
	return errors.Join(err, st.Stop())
}
