package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// golden is an independent collector's answer for one capture (testdata/pcaps/*.golden.json).
type golden struct {
	Source string                 `json:"source"`
	Total  goldenRow              `json:"total"`
	Top    map[string][]goldenRow `json:"top"`
}

type goldenRow struct {
	Key     string `json:"key"`
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Flows   uint64 `json:"flows"`
}

// The dimensions whose top 10 must equal the golden answer.
var goldenDims = []string{"srcip", "dstip", "ip", "dstport", "proto"}

func captures(t *testing.T) []string {
	t.Helper()
	// The packet trace the exporters read is in testdata/traces: every file here is an export.
	files, err := filepath.Glob("../../testdata/pcaps/*.pcap")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no captures in testdata/pcaps: run make testdata")
	return files
}

func loadGolden(t *testing.T, pcap string) golden {
	t.Helper()
	data, err := os.ReadFile(strings.TrimSuffix(pcap, ".pcap") + ".golden.json")
	require.NoError(t, err)
	var g golden
	require.NoError(t, json.Unmarshal(data, &g))
	return g
}

// apiRow is a row of a top answer.
type apiRow struct {
	Key, Label            string
	Bytes, Packets, Flows uint64
	Error                 uint64
}

type apiTop struct {
	Rows         []apiRow
	Other        struct{ Bytes, Packets, Flows uint64 }
	Total        struct{ Bytes, Packets, Flows uint64 }
	Exact        bool
	Partial      bool
	Unanswered   []string
	RulesChanged []string `json:"rules_changed"`
}

func queryTop(t *testing.T, base, by string, from, to time.Time) apiTop {
	t.Helper()
	return queryTopQ(t, base, url.Values{"by": {by}, "n": {"10"}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}})
}

// queryTopQ is GET /api/v1/top with the parameters q.
func queryTopQ(t *testing.T, base string, q url.Values) apiTop {
	t.Helper()
	var out apiTop
	getAnswer(t, base+"/api/v1/top?"+q.Encode(), &out)
	return out
}

// getAnswer GETs url, requires a 200 and decodes its JSON into out.
func getAnswer(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.NoError(t, json.Unmarshal(body, out))
}

// compareWithGolden checks totals and the top-10 lists of goldenDims.
func compareWithGolden(t *testing.T, base string, g golden, from, to time.Time) {
	t.Helper()
	for _, by := range goldenDims {
		got := queryTop(t, base, by, from, to)
		require.Equal(t, g.Total.Bytes, got.Total.Bytes, "%s total bytes", by)
		require.Equal(t, g.Total.Packets, got.Total.Packets, "%s total packets", by)
		require.Equal(t, g.Total.Flows, got.Total.Flows, "%s total flows", by)
		want := g.Top[by]
		if len(want) > 10 {
			want = want[:10]
		}
		require.Len(t, got.Rows, len(want), by)
		for i, w := range want {
			r := got.Rows[i]
			require.Equal(t, w.Key, r.Key, "%s row %d", by, i)
			require.Equal(t, []uint64{w.Bytes, w.Packets, w.Flows}, []uint64{r.Bytes, r.Packets, r.Flows}, "%s row %d (%s)", by, i, w.Key)
			require.Zero(t, r.Error, "%s row %d", by, i)
		}
	}
	t.Logf("totals bytes=%d packets=%d flows=%d equal the golden file; top-10 %s equal",
		g.Total.Bytes, g.Total.Packets, g.Total.Flows, strings.Join(goldenDims, ", "))
}

// startServe runs tmsd in-process on loopback ports chosen by the kernel.
func startServe(t *testing.T, data string) *pipeline {
	t.Helper()
	cfg := defaultConfig()
	cfg.NetFlow, cfg.SFlow, cfg.HTTP, cfg.Data = []string{"127.0.0.1:0"}, []string{"127.0.0.1:0"}, "127.0.0.1:0", data
	cfg.Listener.Sockets = 2
	p, _ := serveConfig(t, cfg, nil)
	return p
}

// serveConfig runs tmsd in-process with cfg (edit, if given, sees the
// pipeline before it starts) and returns it with its API's base URL.
func serveConfig(t *testing.T, cfg Config, edit func(*pipeline)) (*pipeline, string) {
	t.Helper()
	p, err := newPipeline(cfg, newLogger("error"), time.Now)
	require.NoError(t, err)
	if edit != nil {
		edit(p)
	}
	require.NoError(t, p.startServe(cfg))
	t.Cleanup(func() { require.NoError(t, p.stop()) })
	return p, "http://" + p.api.Addr().String()
}

// sendFlows sends one datagram to the pipeline's NetFlow listener and waits
// until its exporter's flows reach want and the shards have counted them.
func sendFlows(t *testing.T, p *pipeline, datagram []byte, want uint64) {
	t.Helper()
	conn, err := net.Dial("udp", p.listeners[0].Addrs()[0].String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write(datagram)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ex := p.decoder.Exporters()
		return len(ex) == 1 && ex[0].Flows == want
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, p.agg.Sync(10*time.Second))
}

func TestImportEqualsGolden(t *testing.T) {
	for _, pcap := range captures(t) {
		t.Run(filepath.Base(pcap), func(t *testing.T) {
			g := loadGolden(t, pcap)
			data := t.TempDir()
			var out bytes.Buffer
			// The captures are older than the default retention: keep them.
			require.NoError(t, run([]string{"import", "--data", data, "--retention", "36500d", pcap}, &out, io.Discard))
			require.Contains(t, out.String(), fmt.Sprintf("%d decoded, %d stored, 0 skipped", g.Total.Flows, g.Total.Flows))

			st, err := pcapsrc.Read(pcap, func(pcapsrc.Datagram) error { return nil })
			require.NoError(t, err)
			p := startServe(t, data)
			compareWithGolden(t, "http://"+p.api.Addr().String(), g, st.First.Add(-2*time.Hour), st.Last.Add(2*time.Hour))
		})
	}
}

func TestLiveReplayEqualsGolden(t *testing.T) {
	for _, pcap := range captures(t) {
		t.Run(filepath.Base(pcap), func(t *testing.T) {
			g := loadGolden(t, pcap)
			p := startServe(t, t.TempDir())
			target := p.listeners[0].Addrs()[0].String()
			if strings.Contains(filepath.Base(pcap), "sflow") {
				target = p.listeners[1].Addrs()[0].String()
			}
			start := time.Now()
			sent := replayPcap(t, target, pcap)
			waitDecoded(t, p, sent)
			// Live, the exporters' capture-era timestamps are far older than the
			// receive time, so every flow lands in the minutes of the replay.
			compareWithGolden(t, "http://"+p.api.Addr().String(), g, start.Add(-time.Minute), time.Now().Add(2*time.Minute))
		})
	}
}

// Flows older than the retention are not stored, and import says how many.
func TestImportReportsFlowsBeyondRetention(t *testing.T) {
	const pcap = "../../testdata/pcaps/softflowd-v5.pcap"
	g := loadGolden(t, pcap)
	var out bytes.Buffer
	// The capture is older than one day of retention (it was committed well before this runs).
	// The retention reads as the configuration writes it (1d, not 24h0m0s).
	require.NoError(t, run([]string{"import", "--data", t.TempDir(), "--retention", "1d", pcap}, &out, io.Discard))
	require.Contains(t, out.String(), fmt.Sprintf("%d decoded, 0 stored, %d skipped (older than the 1d retention)", g.Total.Flows, g.Total.Flows))
}
