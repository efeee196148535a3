package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// endsAnswer is the part of a top or report answer the either-side checks read.
type endsAnswer struct {
	CountsPerFlow *int `json:"counts_per_flow"`
	Rows          []endsAmounts
	Other, Total  endsAmounts
	Exact         bool
}

type endsAmounts struct {
	Key                   string
	Bytes, Packets, Flows uint64
	Share                 float64
}

// On a real capture, ip and port count each flow at both ends: the rows and
// other add up to exactly twice the total in bytes, packets and flows, every
// key's share is of the total (as nfdump's -s ip percentages), so they add up
// to 2 over all keys, and the CLI says so. dstport is unchanged: rows + other
// = total, shares add up to 1.
func TestEitherSideOtherAndShareOnACapture(t *testing.T) {
	const pcap = "../../testdata/pcaps/softflowd-v9.pcap"
	g := loadGolden(t, pcap)
	data := t.TempDir()
	require.NoError(t, run([]string{"import", "--data", data, "--retention", "36500d", pcap}, io.Discard, io.Discard))
	st, err := pcapsrc.Read(pcap, func(pcapsrc.Datagram) error { return nil })
	require.NoError(t, err)
	p := startServe(t, data)
	base := "http://" + p.api.Addr().String()
	from, to := st.First.Add(-2*time.Hour).Truncate(time.Hour), st.Last.Add(3*time.Hour).Truncate(time.Hour)
	get := func(path string, q url.Values) endsAnswer {
		t.Helper()
		q.Set("from", from.Format(time.RFC3339))
		q.Set("to", to.Format(time.RFC3339))
		resp, err := http.Get(base + path + "?" + q.Encode())
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var a endsAnswer
		require.NoError(t, json.Unmarshal(body, &a))
		require.NotNil(t, a.CountsPerFlow, "counts_per_flow is always present: %s", q.Encode())
		return a
	}
	check := func(by string, k int) {
		t.Helper()
		for _, path := range []string{"/api/v1/top", "/api/v1/report"} {
			for _, n := range []string{"10", "10000"} {
				q := url.Values{"by": {by}, "n": {n}}
				if path == "/api/v1/report" {
					q.Set("step", "1h")
				}
				a := get(path, q)
				what := path + "?" + q.Encode()
				require.Equal(t, k, *a.CountsPerFlow, what)
				require.True(t, a.Exact, what)
				require.Equal(t, []uint64{g.Total.Bytes, g.Total.Packets, g.Total.Flows}, []uint64{a.Total.Bytes, a.Total.Packets, a.Total.Flows},
					"%s: the golden total, each flow once", what)
				sum, share := a.Other, a.Other.Share
				for _, r := range a.Rows {
					sum.Bytes, sum.Packets, sum.Flows = sum.Bytes+r.Bytes, sum.Packets+r.Packets, sum.Flows+r.Flows
					share += r.Share
					require.InDelta(t, float64(r.Bytes)/float64(g.Total.Bytes), r.Share, 1e-12, "%s %s: share of the total", what, r.Key)
				}
				kk := uint64(k)
				require.Equal(t, []uint64{kk * g.Total.Bytes, kk * g.Total.Packets, kk * g.Total.Flows}, []uint64{sum.Bytes, sum.Packets, sum.Flows},
					"%s: rows + other = %d × total", what, k)
				require.InDelta(t, float64(k), share, 1e-9, "%s: shares with other's", what)
				if n == "10" {
					require.Len(t, a.Rows, 10, what)
					require.NotZero(t, a.Other.Bytes, "%s: the keys past the top 10 hold something in every metric", what)
					require.NotZero(t, a.Other.Packets, what)
					require.NotZero(t, a.Other.Flows, what)
					continue
				}
				// Every key listed: nothing is left, and the keys alone hold k × total.
				require.Zero(t, a.Other.Bytes+a.Other.Packets+a.Other.Flows, "%s: every key listed", what)
				require.Greater(t, len(a.Rows), 100, what)
			}
		}
	}
	check("port", 2)
	check("ip", 2)
	check("dstport", 1)
	check("srcip", 1)

	// The CLI prints the same figures and says why the shares pass 100 %.
	var out bytes.Buffer
	env := cliEnv{stdout: &out, stderr: io.Discard, getenv: func(string) string { return "" }, client: &http.Client{}}
	span := []string{"--server", base, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339)}
	require.NoError(t, clientCommand("top", append([]string{"--by", "port", "--n", "5"}, span...), env))
	a := get("/api/v1/top", url.Values{"by": {"port"}, "n": {"5"}})
	require.Regexp(t, `(?m)^\(other keys\)\s+\S+ \S*B\s.*\s`+strconv.FormatUint(a.Other.Flows, 10)+`\s+`+regexp.QuoteMeta(humanShare(a.Other.Share))+`$`, out.String())
	require.Contains(t, out.String(), "each flow counts at both ends (source and destination): the shares add up to 200%")
	out.Reset()
	require.NoError(t, clientCommand("top", append([]string{"--by", "dstport", "--n", "5"}, span...), env))
	require.NotContains(t, out.String(), "both ends")
}
