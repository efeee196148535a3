package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two runs' minutes of one exporter overlap unless they are apart or only
// share the edge minute of consecutive captures.
func TestLedgerOverlap(t *testing.T) {
	at := func(hhmm string) time.Time {
		m, err := time.Parse("15:04", hhmm)
		require.NoError(t, err)
		return m
	}
	x := netip.MustParseAddr("192.0.2.1")
	f := func(a1, a2, b1, b2 string, want bool) {
		t.Helper()
		a := importExporter{Addr: x, First: at(a1), Last: at(a2)}
		b := importExporter{Addr: x, First: at(b1), Last: at(b2)}
		require.Equal(t, want, overlap(a, b), "%s–%s vs %s–%s", a1, a2, b1, b2)
		require.Equal(t, want, overlap(b, a), "%s–%s vs %s–%s", b1, b2, a1, a2)
	}
	f("10:00", "10:59", "11:00", "11:59", false) // apart
	f("10:00", "11:00", "11:00", "11:59", false) // rotated at 11:00: the edge minute is shared
	f("10:00", "11:01", "11:00", "11:59", true)  // two minutes in common
	f("10:00", "10:59", "10:30", "10:40", true)  // one inside the other
	f("10:00", "10:00", "10:00", "10:00", true)  // the same single minute (the testdata captures)
	f("10:00", "10:59", "10:00", "10:59", true)  // the same hour
}
