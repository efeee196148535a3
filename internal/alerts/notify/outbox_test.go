package notify

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/alerts"
	"github.com/tmsd/tmsd/internal/store"
)

// Events a target did not take before a stop are delivered after the next
// start, in order, each once, from a real store.
func TestUndeliveredSurviveARestart(t *testing.T) {
	scfg := store.DefaultConfiguration()
	scfg.InMemory = true
	st, err := store.New(scfg, store.Dependencies{})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	t.Cleanup(func() { require.NoError(t, st.Stop()) })

	var down atomic.Bool
	down.Store(true)
	rec := newRecorder(t, func(int) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := webhookConfig(rec.srv.URL)
	cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	n, err := New(cfg, Dependencies{Store: st})
	require.NoError(t, err)
	require.NoError(t, n.Start())
	for i := range 4 {
		require.NoError(t, n.Send([]string{"hook"}, sampleEvent(i)))
	}
	require.Eventually(t, func() bool { return len(rec.requests()) >= 3 }, 10*time.Second, time.Millisecond, "the head is retried")
	require.NoError(t, n.Stop())
	require.Empty(t, rec.delivered())

	down.Store(false)
	n2 := start(t, cfg, Dependencies{Store: st})
	require.Eventually(t, func() bool { return len(rec.delivered()) == 4 }, 10*time.Second, time.Millisecond)
	var got []string
	for _, b := range rec.delivered() {
		got = append(got, eventNumber(t, b))
	}
	require.Equal(t, []string{"0", "1", "2", "3"}, got, "every event, once, in order")
	require.Equal(t, map[string]int{"hook": 0}, n2.Pending())

	// The outbox was emptied: a third start sends nothing again.
	require.NoError(t, n2.Stop())
	n3 := start(t, cfg, Dependencies{Store: st})
	require.Equal(t, map[string]int{"hook": 0}, n3.Pending())
}

// An Alertmanager target gets each firing alert again every minute while it
// fires, with endsAt ahead (Alertmanager would otherwise resolve it after
// its resolve_timeout), and no more once resolved; the alerts firing there
// outlive a restart.
func TestAlertmanagerKeepalive(t *testing.T) {
	rec := newRecorder(t, nil) // outside the bubble: its server waits on the network
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfiguration()
		cfg.Targets = []Target{{Name: "am", Type: TypeAlertmanager, URL: rec.srv.URL}}
		n := start(t, cfg, Dependencies{HTTPClient: bubbleClient()})
		ev := sampleEvent(1)
		require.NoError(t, n.Send([]string{"am"}, ev))
		synctest.Wait()
		require.Len(t, rec.delivered(), 1)
		time.Sleep(3*amResend + time.Second)
		synctest.Wait()
		require.Len(t, rec.delivered(), 4, "re-posted each minute")
		var last []struct {
			EndsAt time.Time `json:"endsAt"`
		}
		require.NoError(t, json.Unmarshal(rec.delivered()[3], &last))
		require.True(t, time.Now().Add(amHold-time.Second).Equal(last[0].EndsAt), "endsAt amHold after the post: %s", last[0].EndsAt)

		ev.Kind = alerts.KindResolved
		ev.EndsAt = ev.At.Add(time.Minute)
		require.NoError(t, n.Send([]string{"am"}, ev))
		time.Sleep(3 * amResend)
		synctest.Wait()
		require.Len(t, rec.delivered(), 5, "the resolution, then nothing")
	})
}

// The alerts firing at an Alertmanager target are re-posted after a
// restart too: the evaluator does not send them again.
func TestAlertmanagerKeepaliveAfterARestart(t *testing.T) {
	scfg := store.DefaultConfiguration()
	scfg.InMemory = true
	st, err := store.New(scfg, store.Dependencies{})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	t.Cleanup(func() { require.NoError(t, st.Stop()) })
	rec := newRecorder(t, nil)
	cfg := DefaultConfiguration()
	cfg.Targets = []Target{{Name: "am", Type: TypeAlertmanager, URL: rec.srv.URL}}
	n, err := New(cfg, Dependencies{Store: st})
	require.NoError(t, err)
	require.NoError(t, n.Start())
	require.NoError(t, n.Send([]string{"am"}, sampleEvent(1)))
	require.Eventually(t, func() bool { return len(rec.delivered()) == 1 }, 10*time.Second, time.Millisecond)
	// Delivered and answered: a Stop while the answer is on its way keeps
	// the event as in flight, to be sent again (Stop's at-least-once).
	require.Eventually(t, func() bool { return n.Pending()["am"] == 0 }, 10*time.Second, time.Millisecond)
	require.NoError(t, n.Stop())

	n2, err := New(cfg, Dependencies{Store: st})
	require.NoError(t, err)
	require.NoError(t, n2.loadOutbox())
	tg := n2.targets["am"]
	require.Len(t, tg.firing, 1, "the firing alert is tracked again")
	want := sampleEvent(1)
	require.Equal(t, want.Fingerprint(), func() string {
		for fp := range tg.firing {
			return fp
		}
		return ""
	}())
	require.Equal(t, 0, tg.pending(), "and not queued again: the keepalive re-posts it")
}
