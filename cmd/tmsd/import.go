package main

import (
	"fmt"
	"io"
	"sort"
	"sync/atomic"
	"time"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// importFiles runs captured export datagrams through the same decode →
// aggregate → store path as live traffic. The exporter is each datagram's source
// address and time is the capture's: the flusher's clock follows the capture.
func importFiles(cfg Config, files []string, out io.Writer) error {
	logger := newLogger(cfg.LogLevel)
	var captureNow atomic.Int64
	p, err := newPipeline(cfg, logger, func() time.Time { return time.Unix(0, captureNow.Load()) })
	if err != nil {
		return err
	}
	if err := p.startCore(); err != nil {
		p.stop()
		return err
	}
	var (
		datagrams, decoded uint64
		first, last        time.Time
		recs               []flow.Record
		readErr            error
	)
	for _, path := range files {
		st, err := pcapsrc.Read(path, func(d pcapsrc.Datagram) error {
			if d.Time.UnixNano() > captureNow.Load() {
				captureNow.Store(d.Time.UnixNano())
			}
			datagrams++
			recs, _ = p.decoder.Decode(d.Src.Addr(), d.Payload, d.Time, recs[:0])
			decoded += uint64(len(recs))
			pushAll(p.ring, recs)
			return nil
		})
		if err != nil {
			readErr = err
			break
		}
		if first.IsZero() || (!st.First.IsZero() && st.First.Before(first)) {
			first = st.First
		}
		if st.Last.After(last) {
			last = st.Last
		}
	}
	syncErr := p.agg.Sync(5 * time.Minute)
	stopErr := p.stop() // flushes every open minute into the store
	if readErr != nil {
		return readErr
	}
	if syncErr != nil {
		return syncErr
	}
	if stopErr != nil {
		return stopErr
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
	fmt.Fprintf(out, "datagrams:  %d\n", datagrams)
	fmt.Fprintf(out, "flows:      %d decoded, %d stored, %d skipped (older than the %s retention)\n",
		decoded, decoded-skipped, skipped, time.Duration(cfg.Retention.Minute))
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
