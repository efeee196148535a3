package notify

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
