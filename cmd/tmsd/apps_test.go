package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// appBytes returns the bytes of each app in a top answer.
func appBytes(top apiTop) map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range top.Rows {
		out[r.Key] = r.Bytes
	}
	return out
}

// goldenPortBytes is nfdump's figure for a port on either side, from -s srcport and -s dstport.
func goldenPortBytes(t *testing.T, g golden, key string) uint64 {
	t.Helper()
	var sum uint64
	for _, dim := range []string{"srcport", "dstport"} {
		found := false
		for _, r := range g.Top[dim] {
			if r.Key == key {
				sum += r.Bytes
				found = true
			}
		}
		require.True(t, found, "%s not in nfdump's top %s", key, dim)
	}
	return sum
}

func TestAppsNamedAndRenamedByRule(t *testing.T) {
	const pcap = "../../testdata/pcaps/softflowd-v9.pcap"
	g := loadGolden(t, pcap)
	st, err := pcapsrc.Read(pcap, func(pcapsrc.Datagram) error { return nil })
	require.NoError(t, err)
	from, to := st.First.Add(-2*time.Hour), st.Last.Add(2*time.Hour)
	// The trace has one PostgreSQL server, 10.1.0.30 (testdata/pcaps/gentrace).
	pgBytes := goldenPortBytes(t, g, "5432/tcp")

	f := func(config string) map[string]uint64 {
		t.Helper()
		data := t.TempDir()
		args := []string{"import", "--data", data, "--retention", "36500d"}
		if config != "" {
			args = append(args, "--config", writeConfig(t, config))
		}
		require.NoError(t, run(append(args, pcap), io.Discard, io.Discard))
		p := startServe(t, data)
		top := queryTop(t, "http://"+p.api.Addr().String(), "app", from, to)
		return appBytes(top)
	}

	plain := f("")
	require.Contains(t, plain, "https")
	require.Equal(t, pgBytes, plain["postgresql"], "postgresql = nfdump's 5432/tcp as source plus as destination")

	renamed := f("apps:\n  - \"erp-db = 10.1.0.30/32 tcp/5432\"\n")
	require.NotContains(t, renamed, "postgresql")
	require.Equal(t, pgBytes, renamed["erp-db"])
	require.Equal(t, plain["https"], renamed["https"], "the rule renames only its CIDR and port")
	t.Logf("without rules: https=%d postgresql=%d bytes (nfdump 5432/tcp: %d); with erp-db rule: erp-db=%d https=%d",
		plain["https"], plain["postgresql"], pgBytes, renamed["erp-db"], renamed["https"])
}
