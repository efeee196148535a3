package alerts

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dgraph-io/badger/v4/y"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/query"
	"github.com/tmsd/tmsd/internal/store"
)

// A restart neither loses a firing alert nor notifies it twice: the second
// evaluator finds it firing, evaluates the minutes missed once, and sends
// only its resolution. The API's rules and the silences come back too, and
// the event log holds each event once.
func TestRestartKeepsAlertsOnce(t *testing.T) {
	packed, err := y.ZSTDCompress(nil, []byte("tmsd"), 1) // see TestStartStop
	require.NoError(t, err)
	_, err = y.ZSTDDecompress(nil, packed)
	require.NoError(t, err)
	synctest.Test(t, func(t *testing.T) {
		st := newStore(t)
		base := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) // synctest's clock
		for i := -10; i < 30; i++ {
			bps := 1 * G
			if i >= 0 && i < 10 {
				bps = 10 * G
			}
			put(t, st, store.TierMinute, base.Add(time.Duration(i)*time.Minute), nil, 0, bps)
		}
		var mu sync.Mutex
		var got []string
		start := func() *Evaluator {
			cfg := DefaultConfiguration()
			cfg.Rules = []Rule{{Name: "s", Threshold: "5G", ResolveFor: Duration(2 * time.Minute)}}
			e, err := New(cfg, Dependencies{
				Source: query.New(st, noOpen{}),
				Store:  st,
				Notify: func(_ []string, ev Event) {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, fmt.Sprintf("%s %s %s at %s", ev.Rule, ev.Kind, ev.At.Format("15:04"), time.Now().UTC().Format("15:04:05")))
				},
				Logger: slog.New(slog.DiscardHandler),
			})
			require.NoError(t, err)
			require.NoError(t, e.Start())
			return e
		}
		seen := func() []string {
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(got)
		}

		a := start()
		_, err := a.PutRule(Rule{Name: "api", Dim: "dstip", Key: "*", Threshold: "100G"})
		require.NoError(t, err)
		_, err = a.Silence(Silence{Rule: "other", Until: base.Add(time.Hour), Comment: "kept"})
		require.NoError(t, err)
		time.Sleep(4*time.Minute + 30*time.Second)
		require.Equal(t, []string{"s firing 00:00 at 00:03:00"}, seen())
		require.NoError(t, a.Stop())

		time.Sleep(3 * time.Minute) // down from 00:04:30 to 00:07:30
		b := start()
		t.Cleanup(func() { require.NoError(t, b.Stop()) })
		synctest.Wait()
		al := b.Alerts()
		require.Len(t, al, 1)
		require.Equal(t, StateFiring, al[0].State)
		require.Equal(t, base, al[0].Since)
		require.Equal(t, base.Add(4*time.Minute), al[0].At, "the minutes missed, 00:02 to 00:04, are evaluated at once")
		require.Len(t, seen(), 1, "not notified again")

		names := []string{}
		for _, r := range b.Rules() {
			names = append(names, r.Name+" "+r.Origin)
		}
		require.Equal(t, []string{"s file", "api api"}, names)
		require.Equal(t, []Silence{{ID: "1", Rule: "other", Until: base.Add(time.Hour), Comment: "kept"}}, b.Silences())

		time.Sleep(7 * time.Minute) // to 00:14:30: minutes 10 and 11 are false
		require.Equal(t, []string{"s firing 00:00 at 00:03:00", "s resolved 00:11 at 00:14:00"}, seen())
		evs, cut, err := b.History(HistoryQuery{From: base.Add(-time.Hour), To: base.Add(time.Hour)})
		require.NoError(t, err)
		require.False(t, cut)
		require.Len(t, evs, 2)
		require.Equal(t, []Kind{KindFiring, KindResolved}, []Kind{evs[0].Kind, evs[1].Kind})
	})
}

// The API's rules: validated with the field named, never over a file's
// rule, and a reload that would define an API rule is refused.
func TestAPIRules(t *testing.T) {
	st := newStore(t)
	cfg := DefaultConfiguration()
	cfg.Rules = []Rule{{Name: "file", Threshold: "1G"}}
	e, err := New(cfg, Dependencies{Source: query.New(st, noOpen{}), Store: st, Logger: slog.New(slog.DiscardHandler),
		Targets: func(n string) bool { return n == "ops" }})
	require.NoError(t, err)

	r, err := e.PutRule(Rule{Name: "x", Dim: "app", Key: "https", Threshold: "8G", Targets: []string{"ops"}})
	require.NoError(t, err)
	require.Equal(t, OriginAPI, r.Origin)
	require.Equal(t, "warning", r.Severity, "defaults filled")

	f := func(in Rule, field string, target error) {
		t.Helper()
		_, err := e.PutRule(in)
		require.ErrorIs(t, err, target)
		if field != "" {
			var re *RuleError
			require.ErrorAs(t, err, &re)
			require.Equal(t, field, re.Field)
		}
	}
	f(Rule{Name: "y", Threshold: "fast"}, "threshold", ErrInvalidRule)
	f(Rule{Name: "y", Threshold: "1G", Targets: []string{"nobody"}}, "targets", ErrInvalidRule)
	f(Rule{Name: "file", Threshold: "2G"}, "", ErrFileRule)
	require.ErrorIs(t, e.DeleteRule("file"), ErrFileRule)
	require.ErrorIs(t, e.DeleteRule("nope"), ErrUnknownRule)

	err = e.SetRules([]Rule{{Name: "file", Threshold: "1G"}, {Name: "x", Threshold: "1G"}})
	var re *RuleError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "name", re.Field)
	require.Len(t, e.Rules(), 2, "the refused reload changed nothing")

	require.NoError(t, e.SetAPIRules([]Rule{{Name: "z", Threshold: "3G"}}))
	require.Equal(t, []string{"file", "z"}, ruleNames(e.Rules()))
	require.NoError(t, e.DeleteRule("z"))
	require.Equal(t, []string{"file"}, ruleNames(e.Rules()))

	// What the store keeps is what a new evaluator starts with.
	require.NoError(t, e.SetAPIRules([]Rule{{Name: "kept", Threshold: "3G"}}))
	e2, err := New(cfg, Dependencies{Source: query.New(st, noOpen{}), Store: st, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, e2.Start())
	t.Cleanup(func() { require.NoError(t, e2.Stop()) })
	require.Equal(t, []string{"file", "kept"}, ruleNames(e2.Rules()))
}

func ruleNames(rs []Rule) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

// The history answers by range, kind and rule, keeps the most recent when
// cut, and retention drops old events.
func TestHistoryQuery(t *testing.T) {
	st := newStore(t)
	e, err := New(DefaultConfiguration(), Dependencies{Source: query.New(st, noOpen{}), Store: st, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	for i := range 10 {
		k := KindFiring
		if i%2 == 1 {
			k = KindResolved
		}
		require.NoError(t, e.record(&Event{Kind: k, Rule: fmt.Sprint("r", i%3), At: minute(i)}))
	}
	f := func(q HistoryQuery, wantAt []int, wantCut bool) {
		t.Helper()
		evs, cut, err := e.History(q)
		require.NoError(t, err)
		at := []int{}
		for _, ev := range evs {
			at = append(at, int(ev.At.Sub(t0)/time.Minute))
		}
		require.Equal(t, wantAt, at)
		require.Equal(t, wantCut, cut)
	}
	f(HistoryQuery{From: minute(2), To: minute(6)}, []int{2, 3, 4, 5}, false)
	f(HistoryQuery{From: minute(0), To: minute(10), Kind: KindResolved}, []int{1, 3, 5, 7, 9}, false)
	f(HistoryQuery{From: minute(0), To: minute(10), Rule: "r0"}, []int{0, 3, 6, 9}, false)
	f(HistoryQuery{From: minute(0), To: minute(10), Limit: 3}, []int{7, 8, 9}, true)

	e.cfg.HistoryRetention = 5 * time.Minute
	e.prune(minute(10))
	f(HistoryQuery{From: minute(0), To: minute(10)}, []int{5, 6, 7, 8, 9}, false)

	var nohist *Evaluator
	nohist, err = New(DefaultConfiguration(), Dependencies{Source: query.New(st, noOpen{})})
	require.NoError(t, err)
	_, _, err = nohist.History(HistoryQuery{})
	require.True(t, errors.Is(err, ErrNoHistory))
}
