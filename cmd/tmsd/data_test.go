package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A store imported from a capture, served: /api/v1/data says where its
// minutes are (the capture's time, not now), and that range, asked as it is,
// holds every flow of the golden answer.
func TestDataOfAnImportedCapture(t *testing.T) {
	for _, pcap := range []string{"../../testdata/pcaps/softflowd-v5.pcap", "../../testdata/pcaps/pmacct-ipfix.pcap"} {
		t.Run(pcap[len("../../testdata/pcaps/"):], func(t *testing.T) {
			data := t.TempDir()
			require.NoError(t, run([]string{"import", "--data", data, "--retention", "36500d", pcap}, io.Discard, io.Discard))
			p := startDashboard(t, data, nil)
			base := "http://" + p.api.Addr().String()
			var got struct {
				From, To *string
				Tiers    map[string]struct{ From, To string }
				Open     *struct{ From, To string }
			}
			getJSON(t, base+"/api/v1/data", &got)
			require.NotNil(t, got.From)
			require.NotNil(t, got.To)
			from, err := time.Parse(time.RFC3339, *got.From)
			require.NoError(t, err)
			to, err := time.Parse(time.RFC3339, *got.To)
			require.NoError(t, err)
			// The capture's minutes, not the day or hour the rollups stored around them.
			first, end := captureSpan(t, pcap)
			require.False(t, from.Before(first.Add(-5*time.Minute)) || to.After(end.Add(5*time.Minute)),
				"data %s – %s, capture %s – %s", from, to, first, end)
			require.Equal(t, got.Tiers["minute"].From, *got.From)
			require.Equal(t, got.Tiers["minute"].To, *got.To)
			require.Nil(t, got.Open, "the import closed its minutes")
			compareWithGolden(t, base, loadGolden(t, pcap), from, to)
			t.Logf("data %s – %s, tiers %v", *got.From, *got.To, got.Tiers)
		})
	}
}
