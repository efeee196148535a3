package alerts

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/store"
)

// A silence mutes an alert: it still fires and resolves, History gets one
// silenced event, the targets nothing. When it expires while the alert fires,
// the firing is notified then.
func TestSilence(t *testing.T) {
	st := newStore(t)
	for i := range 26 {
		bps := 10 * G
		if i >= 20 {
			bps = 1 * G
		}
		put(t, st, store.TierMinute, minute(i), nil, 0, bps)
	}
	h := newHarness(t, st, Rule{Name: "s", Threshold: "5G", ResolveFor: Duration(time.Minute)})
	h.now = t0
	_, err := h.e.Silence(Silence{Rule: "other", Until: minute(100)})
	require.NoError(t, err)
	_, err = h.e.Silence(Silence{ID: "maint", Rule: "s", Until: minute(5), Comment: "maintenance"})
	require.NoError(t, err)
	h.eval(0, 2)
	al := h.e.Alerts() // at 00:04 (minute 1 + 1m + grace): still silenced
	require.Len(t, al, 1)
	require.Equal(t, StateFiring, al[0].State)
	require.True(t, al[0].Silenced)
	h.eval(2, 5)
	require.Empty(t, h.sent())
	require.Equal(t, []transition{{KindSilenced, "", 0}}, h.transitions(h.history()))
	require.False(t, h.e.Alerts()[0].Silenced, "at 00:07 the silence has ended")

	h.eval(5, 10) // expired: minute 5 starts at its end
	require.Equal(t, []transition{{KindFiring, "", 5}}, h.sent())
	require.Equal(t, minute(0), h.notified[0].Since)
	require.Equal(t, []Silence{{ID: "1", Rule: "other", Until: minute(100)}}, h.e.Silences(), "the expired one is gone")

	_, err = h.e.Silence(Silence{Rule: "s", Key: "*", Until: minute(30)})
	require.NoError(t, err)
	h.eval(10, 26)
	require.Equal(t, []transition{{KindFiring, "", 5}}, h.sent(), "the resolution at 20 is silenced")
	require.Equal(t, []transition{{KindSilenced, "", 0}, {KindFiring, "", 5}, {KindSilenced, "", 10}}, h.transitions(h.history()))
	require.Empty(t, h.e.Alerts())

	require.ErrorIs(t, h.e.Unsilence("nope"), ErrUnknownSilence)
	require.NoError(t, h.e.Unsilence("1"))
	require.Len(t, h.e.Silences(), 1)
}

func TestSilenceValidation(t *testing.T) {
	h := newHarness(t, newStore(t), Rule{Name: "k", Dim: "dstport", Key: "443/tcp", Threshold: "1G"})
	h.now = t0
	f := func(s Silence, want string) {
		t.Helper()
		_, err := h.e.Silence(s)
		if want == "" {
			require.NoError(t, err)
			return
		}
		require.EqualError(t, err, want)
	}
	f(Silence{Until: minute(1)}, "silence: rule: missing")
	f(Silence{Rule: "k", Until: t0}, "silence: until: 2026-03-02T00:00:00Z is not in the future")
	f(Silence{Rule: "k", Key: "443", Until: minute(1)}, `silence: key: port key is PORT/PROTO, e.g. 443/tcp: "443"`)
	f(Silence{ID: "x", Rule: "k", Key: "443/6", Until: minute(1)}, "")
	require.Equal(t, "443/tcp", h.e.Silences()[0].Key, "written as the rule's events write it")
}
