package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// liveClassifier is the application classifier a reload can replace
// (SIGHUP, POST /api/v1/admin/reload). The aggregator keeps application
// ids in its tables and names them at the minute's close, so an id must
// name the same application for the whole life of the process: the port
// table's ids are the same in every classifier, and the rules' applications
// get ids from one append-only list, whatever rule set named them. A new rule
// set classifies the flows received from the next minute on, so that no
// minute is classified by two rule sets; the answers that span a change say
// so (RuleChanges).
type liveClassifier struct {
	tableApps uint16 // ids 1..tableApps are the port table's

	mu   sync.Mutex                 // reloads, one at a time
	keys atomic.Pointer[[]topn.Key] // rule applications: id tableApps+1+i names keys[i]
	st   atomic.Pointer[classifierState]
}

type classifierState struct {
	cur, prev       *apps.Classifier
	curIDs, prevIDs []uint16 // a rule application's id in its classifier, past tableApps → its id here
	from            int64    // unix ms: flows received from then on are cur's
	changes         []time.Time
}

func newLiveClassifier(rules []apps.Rule) (*liveClassifier, error) {
	base, err := apps.New(nil)
	if err != nil {
		return nil, err
	}
	l := &liveClassifier{}
	for id := uint16(1); ; id++ {
		if _, ok := base.AppKey(id); !ok {
			l.tableApps = id - 1
			break
		}
	}
	l.keys.Store(&[]topn.Key{})
	c, err := apps.New(rules)
	if err != nil {
		return nil, err
	}
	l.st.Store(&classifierState{cur: c, prev: c, curIDs: l.ids(c), from: 0})
	return l, nil
}

// ids maps c's rule application ids to the process's, adding the names
// not seen before. Called under mu (or before l is shared).
func (l *liveClassifier) ids(c *apps.Classifier) []uint16 {
	keys := append([]topn.Key(nil), *l.keys.Load()...)
	var out []uint16
	for id := l.tableApps + 1; ; id++ {
		k, ok := c.AppKey(id)
		if !ok {
			break
		}
		g := -1
		for i, x := range keys {
			if x == k {
				g = i
				break
			}
		}
		if g < 0 {
			g = len(keys)
			keys = append(keys, k)
		}
		out = append(out, l.tableApps+1+uint16(g))
	}
	l.keys.Store(&keys)
	return out
}

// replace makes rules the classification of flows received from the next
// minute of now on.
func (l *liveClassifier) replace(rules []apps.Rule, now time.Time) (time.Time, error) {
	c, err := apps.New(rules)
	if err != nil {
		return time.Time{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.st.Load()
	from := now.Truncate(time.Minute).Add(time.Minute)
	if len(*l.keys.Load())+len(rules) >= 1<<16-int(l.tableApps)-1 {
		return time.Time{}, fmt.Errorf("too many application names over this process's reloads: restart tmsd")
	}
	cur, curIDs := old.cur, old.curIDs
	if old.from > now.UnixMilli() { // a reload before the last one took effect replaces it
		cur, curIDs = old.prev, old.prevIDs
	}
	l.st.Store(&classifierState{cur: c, prev: cur, curIDs: l.ids(c), prevIDs: curIDs,
		from: from.UnixMilli(), changes: append(append([]time.Time(nil), old.changes...), from)})
	return from, nil
}

// ClassifyID is the application id of a flow, by the rules in force when it was received.
func (l *liveClassifier) ClassifyID(r *flow.Record) uint16 {
	st := l.st.Load()
	c, ids := st.cur, st.curIDs
	if r.Received < st.from {
		c, ids = st.prev, st.prevIDs
	}
	id := c.ClassifyID(r)
	if id > l.tableApps {
		return ids[id-l.tableApps-1]
	}
	return id
}

// AppKey names an id.
func (l *liveClassifier) AppKey(id uint16) (topn.Key, bool) {
	if id <= l.tableApps {
		return l.st.Load().cur.AppKey(id)
	}
	keys := *l.keys.Load()
	if i := int(id - l.tableApps - 1); i < len(keys) {
		return keys[i], true
	}
	return topn.Key{}, false
}

// Group is the group of an application id, by the rules in force (those
// before, for an application only they named).
func (l *liveClassifier) Group(id uint16) (string, bool) {
	st := l.st.Load()
	if id <= l.tableApps {
		return st.cur.Group(id)
	}
	for _, x := range []struct {
		c   *apps.Classifier
		ids []uint16
	}{{st.cur, st.curIDs}, {st.prev, st.prevIDs}} {
		for i, pid := range x.ids {
			if pid == id {
				return x.c.Group(l.tableApps + 1 + uint16(i))
			}
		}
	}
	return "", false
}

// Apps is how many application ids there are.
func (l *liveClassifier) Apps() int { return int(l.tableApps) + len(*l.keys.Load()) }

// PortName is the port table's name of a port (the same in every rule set).
func (l *liveClassifier) PortName(proto uint8, port uint16) (string, bool) {
	return l.st.Load().cur.PortName(proto, port)
}

// RuleChanges are the minutes from which a reload changed the rules, within [from, to).
func (l *liveClassifier) RuleChanges(from, to time.Time) []time.Time {
	var out []time.Time
	for _, t := range l.st.Load().changes {
		if !t.Before(from) && t.Before(to) {
			out = append(out, t)
		}
	}
	return out
}
