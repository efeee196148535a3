package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// softflowd reading a pcap without -a mixes clocks (testdata/pcaps/README.md,
// softflowd quirks): the v9 header carries the wall clock at export
// (unix_secs 1795378200 = 2026-11-22 20:10:00) and sysUptime = 5 ms since
// softflowd started, but FIRST/LAST_SWITCHED are (packet time - softflowd's
// wall-clock start) mod 2^32 ms = 2443966656..2444191572, "-21.4 days"
// wrapped. nfdump adds them as unsigned and puts the flows 28.3 days after
// the export (2026-12-21 03:02:46..03:06:31). tmsd takes sysUptime -
// SWITCHED in uint32 (a sysUptime wrap), which lands every flow 21.4 days
// before the export (at the trace time, 2026-11-01 10:00, minus 0.7 s):
// insane either way, so the aggregator must replace every flow's time by its
// receive time (the capture time), counting each in time_corrections.
func TestSoftflowdPcapTimestampsCorrected(t *testing.T) {
	const pcap = "../../testdata/pcaps/softflowd-v9-pcaptime.pcap"
	g := loadGolden(t, pcap)
	st, err := pcapsrc.Read(pcap, func(pcapsrc.Datagram) error { return nil })
	require.NoError(t, err)
	// The minutes spanned by the capture (all 48 datagrams are sent within 1 ms).
	from, to := st.First.Add(-time.Minute), st.Last.Add(2*time.Minute)

	// tmsd import, then serve the data: every flow is in the capture's minutes,
	// none 21 or 28 days away (the golden totals are all the flows).
	t.Run("import", func(t *testing.T) {
		data := t.TempDir()
		var out bytes.Buffer
		require.NoError(t, run([]string{"import", "--data", data, "--retention", "36500d", pcap}, &out, io.Discard))
		require.Contains(t, out.String(), fmt.Sprintf("%d decoded, %d stored, 0 skipped", g.Total.Flows, g.Total.Flows))
		p := startServe(t, data)
		compareWithGolden(t, "http://"+p.api.Addr().String(), g, from, to)
	})

	// time_corrections lives in the aggregator's memory only (it is not
	// stored, so a server started on the imported data lists no exporter):
	// run the import's path (decode with the capture time as receive time,
	// the aggregator's clock following the capture) in a pipeline that also
	// serves the API, and read it from GET /api/v1/exporters.
	t.Run("exporters", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.NetFlow, cfg.SFlow, cfg.HTTP, cfg.Data = nil, nil, "127.0.0.1:0", t.TempDir()
		cfg.Retention.Minute = Duration(36500 * 24 * time.Hour)
		var captureNow atomic.Int64
		p, err := newPipeline(cfg, newLogger("warn"), func() time.Time { return time.Unix(0, captureNow.Load()) })
		require.NoError(t, err)
		require.NoError(t, p.startServe(cfg))
		t.Cleanup(func() { require.NoError(t, p.stop()) })

		var (
			recs             []flow.Record
			insane           uint64
			minBack, maxBack time.Duration // receive time - exporter end time
		)
		_, err = pcapsrc.Read(pcap, func(d pcapsrc.Datagram) error {
			if d.Time.UnixNano() > captureNow.Load() {
				captureNow.Store(d.Time.UnixNano())
			}
			recs, _ = p.decoder.Decode(d.Src.Addr(), d.Payload, d.Time, recs[:0])
			for _, r := range recs {
				back := time.Duration(r.Received-r.End) * time.Millisecond
				if r.End != 0 && (back < -aggregate.MaxAhead || back > time.Duration(cfg.Aggregate.MaxAge)) {
					insane++
				}
				if minBack == 0 || back < minBack {
					minBack = back
				}
				maxBack = max(maxBack, back)
			}
			pushAll(p.ring, recs)
			return nil
		})
		require.NoError(t, err)
		require.NoError(t, p.agg.Sync(30*time.Second))
		t.Logf("exporter end times %s to %s before the receive time", minBack.Round(time.Second), maxBack.Round(time.Second))
		require.Equal(t, g.Total.Flows, insane, "flows whose exporter time is insane")
		// 21.4 days: the trace's packet times, read back through the uint32 wrap.
		require.Greater(t, minBack, 21*24*time.Hour)
		require.Less(t, maxBack, 22*24*time.Hour)

		base := "http://" + p.api.Addr().String()
		resp, err := http.Get(base + "/api/v1/exporters")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var body struct {
			Exporters []struct {
				Address         string `json:"address"`
				Flows           uint64 `json:"flows"`
				TimeCorrections uint64 `json:"time_corrections"`
			} `json:"exporters"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		require.Len(t, body.Exporters, 1)
		e := body.Exporters[0]
		require.Equal(t, "127.0.0.1", e.Address)
		require.Equal(t, g.Total.Flows, e.Flows)
		require.Equal(t, g.Total.Flows, e.TimeCorrections, "every flow's time replaced by the receive time")

		compareWithGolden(t, base, g, from, to)
	})
}
