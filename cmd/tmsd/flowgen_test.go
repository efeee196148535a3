package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flowgen"
)

// A short flowgen → tmsd run per format, over real UDP on loopback: tmsd's
// API totals and top 10 source addresses and destination ports must equal
// what flowgen knows it sent. Rates are modest: this checks exactness, and
// `make bench` measures speed.
func TestFlowgenSmokeExact(t *testing.T) {
	for _, format := range []string{"v5", "v9", "ipfix", "sflow"} {
		t.Run(format, func(t *testing.T) {
			p := startServe(t, t.TempDir())
			target := p.listeners[0].Addrs()[0].String()
			if format == "sflow" {
				target = p.listeners[1].Addrs()[0].String()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			truth, err := flowgen.Run(ctx, flowgen.Config{Format: format, Target: target, Rate: 200_000,
				Duration: time.Second, Count: 300_000, Exporters: 3, Seed: 7, Hosts: 20_000, Sampling: 10})
			require.NoError(t, err)
			require.Positive(t, truth.Sent.Flows)
			require.Eventually(t, func() bool {
				var n uint64
				for _, e := range p.decoder.Exporters() {
					n += e.Datagrams
				}
				return n == truth.Sent.Datagrams
			}, 20*time.Second, 10*time.Millisecond, "every datagram received")
			require.NoError(t, p.agg.Sync(20*time.Second))

			base := "http://" + p.api.Addr().String()
			from, to := start.Add(-time.Minute), time.Now().Add(time.Minute)
			for _, dim := range []struct {
				by   string
				want []flowgen.Entry
			}{{"srcip", truth.Top.SrcIP}, {"dstport", truth.Top.DstPort}} {
				got := queryTop(t, base, dim.by, from, to)
				require.Equal(t, []uint64{truth.Total.Bytes, truth.Total.Packets, truth.Total.Flows},
					[]uint64{got.Total.Bytes, got.Total.Packets, got.Total.Flows}, "totals")
				want := dim.want[:min(10, len(dim.want))]
				require.Len(t, got.Rows, len(want))
				for i, w := range want {
					r := got.Rows[i]
					require.Equal(t, w.Key, r.Key, "%s row %d", dim.by, i)
					require.Equal(t, []uint64{w.Bytes, w.Packets, w.Flows}, []uint64{r.Bytes, r.Packets, r.Flows}, "%s row %d", dim.by, i)
				}
			}
			t.Logf("%s: %d datagrams, %d flows at %.0f flows/s; totals and top-10 srcip, dstport equal the truth",
				format, truth.Sent.Datagrams, truth.Sent.Flows, truth.RateFlowsPerS)
		})
	}
}
