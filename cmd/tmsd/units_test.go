package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHumanUnits(t *testing.T) {
	rate := func(v float64, unit, want string) {
		t.Helper()
		require.Equal(t, want, humanRate(v, unit), "%v", v)
	}
	rate(1_234_567_890, "bps", "1.23 Gbps")
	rate(0, "bps", "0 bps")
	rate(999, "bps", "999 bps")
	rate(999.6, "bps", "1.00 kbps")
	rate(12_345, "bps", "12.3 kbps")
	rate(123_456_789, "bps", "123 Mbps")
	rate(999_999_999, "bps", "1.00 Gbps")
	rate(4_560_000, "pps", "4.56 Mpps")
	rate(2.5e15, "bps", "2.50 Pbps")
	rate(-1500, "bps", "-1.50 kbps")

	bytes := func(v uint64, want string) {
		t.Helper()
		require.Equal(t, want, humanBytes(v), "%d", v)
	}
	bytes(0, "0 B")
	bytes(512, "512 B")
	bytes(1024, "1.00 KiB")
	bytes(1_610_612_736, "1.50 GiB")
	bytes(1_234_567_890, "1.15 GiB")
	bytes(1010*1024, "0.99 MiB")
	bytes(5<<40, "5.00 TiB")

	require.Equal(t, "62.5%", humanShare(0.625))
	plus, minus, zero := 100.0, -12.34, 0.01
	require.Equal(t, "+100.0%", humanDelta(&plus))
	require.Equal(t, "-12.3%", humanDelta(&minus))
	require.Equal(t, "0.0%", humanDelta(&zero))
	require.Equal(t, "new", humanDelta(nil))

	require.Equal(t, "KEY      BYTES\nhttps  1.0 GiB\nssh        5 B\n",
		alignTable([][]string{{"KEY", "BYTES"}, {"https", "1.0 GiB"}, {"ssh", "5 B"}}))
}
