package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tmsd/tmsd/internal/query"
	"github.com/tmsd/tmsd/internal/store/tablecodec"
	"github.com/tmsd/tmsd/internal/topn"
)

// A query across aggregators (docs/SCALE-OUT.md). Aggregators of one Kafka
// group count disjoint flows; one configured with its peers answers top,
// series and report for all of them: it asks each peer for its own answer
// over POST /api/v1/peer/query (the engine's result: tables in the store's
// binary framing, series as points), merges them with query's merges (totals
// add, error bounds combine), and names a peer that did not answer in
// unanswered, with partial set, rather than failing or leaving a silent hole.

// engine is what the traffic routes ask: the local query engine, or the
// fleet of it and its peers.
type engine interface {
	Top(sc topn.Scope, d topn.Dim, from, to time.Time, n int, m topn.Metric) (query.Result, error)
	Series(sc topn.Scope, from, to time.Time, step time.Duration, d topn.Dim, key *topn.Key) (query.SeriesResult, error)
	Report(sc topn.Scope, d topn.Dim, from, to time.Time, step time.Duration, n int, m topn.Metric) (query.ReportResult, error)
	ReportKeys(sc topn.Scope, d topn.Dim, keys []topn.Key, from, to time.Time, step time.Duration) (query.ReportResult, error)
}

// peerQuery is the body of POST /api/v1/peer/query: one engine call.
type peerQuery struct {
	Op     string        `json:"op"` // top, series or report_keys
	Scope  topn.Scope    `json:"scope"`
	Dim    topn.Dim      `json:"dim"`
	From   time.Time     `json:"from"`
	To     time.Time     `json:"to"`
	Step   time.Duration `json:"step,omitempty"`
	N      int           `json:"n,omitempty"`
	Metric topn.Metric   `json:"metric"`
	Key    *topn.Key     `json:"key,omitempty"`
	Keys   []topn.Key    `json:"keys,omitempty"`
}

// peerAnswer is a peer's answer: its own traffic only.
type peerAnswer struct {
	Answer query.Answer        `json:"answer"`
	Table  []byte              `json:"table,omitempty"` // top: tablecodec
	Series []query.Point       `json:"series,omitempty"`
	Report *query.ReportResult `json:"report,omitempty"`
}

// peerTimeout bounds a peer's answer: a query waits no longer for one that
// is down or stuck, and names it instead.
const peerTimeout = 10 * time.Second

// CheckPeer validates a peer's base URL.
func CheckPeer(p string) error {
	u, err := url.Parse(p)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("%q is not a peer's base URL, such as http://aggregator-2:8080", p)
	}
	return nil
}

// engine is the local engine, or with peers configured, the fleet; a peer's
// own query is answered locally (no fan-out of a fan-out).
func (a *API) engine(c echo.Context) engine {
	if len(a.cfg.Peers) == 0 {
		return a.deps.Engine
	}
	return &fleet{a: a, auth: c.Request().Header.Get("Authorization"), ctx: c.Request().Context()}
}

// peerQuery answers a peer's fan-out from this aggregator's traffic alone.
func (a *API) peerQuery(c echo.Context, _ *request) error {
	var q peerQuery
	if err := decodeBody(c, &q); err != nil {
		return err
	}
	switch {
	case !q.From.Before(q.To):
		return badParam("from", "must be before to")
	case q.To.Sub(q.From) > a.cfg.MaxRange:
		return badParam("to", "range longer than max_range %s", a.cfg.MaxRange)
	case q.Op == "top" && (q.N < 1 || q.N > peerN(a.cfg.MaxN)):
		return badParam("n", "want 1 to %d, got %d", peerN(a.cfg.MaxN), q.N)
	case q.Op != "top" && q.Op != "series" && q.Op != "report_keys":
		return badParam("op", "want top, series or report_keys, got %q", q.Op)
	case q.Op == "report_keys" && len(q.Keys) > a.cfg.MaxN:
		return badParam("keys", "at most %d keys", a.cfg.MaxN)
	}
	if q.Op != "top" && (q.Step < time.Minute || q.To.Sub(q.From)/q.Step > 100_000) {
		return badParam("step", "want at least 1m and at most 100000 steps")
	}
	if err := checkScopeDim(q.Scope, q.Dim); err != nil {
		return err
	}
	e := a.deps.Engine
	var out peerAnswer
	switch q.Op {
	case "top":
		r, err := e.Top(q.Scope, q.Dim, q.From, q.To, q.N, q.Metric)
		if err != nil {
			return err
		}
		out.Answer, out.Table = r.Answer, tablecodec.Encode(r.Table)
	case "series":
		r, err := e.Series(q.Scope, q.From, q.To, q.Step, q.Dim, q.Key)
		if err != nil {
			return err
		}
		out.Answer, out.Series = r.Answer, r.Points
	case "report_keys":
		r, err := e.ReportKeys(q.Scope, q.Dim, q.Keys, q.From, q.To, q.Step)
		if err != nil {
			return err
		}
		out.Answer, out.Report = r.Answer, &r
	}
	return c.JSON(http.StatusOK, out)
}

// fleet is one query's view of this aggregator and its peers.
type fleet struct {
	a    *API
	auth string // the client's Authorization, for the peers (one token set per fleet)
	ctx  context.Context
}

// ask runs q here and at every peer at once; local gets this aggregator's
// answer, each peer's answer goes to add, and the peers that did not answer
// are returned.
func (f *fleet) ask(q peerQuery, local func() error, add func(peerAnswer) error) ([]string, error) {
	peers := f.a.cfg.Peers
	answers := make([]peerAnswer, len(peers))
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() { answers[i], errs[i] = f.call(p, q) })
	}
	err := local()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	var down []string
	for i, p := range peers {
		if errs[i] == nil {
			errs[i] = add(answers[i])
		}
		if errs[i] != nil {
			down = append(down, p)
			f.a.peerFailures.Add(1)
			f.a.warnPeer(p, errs[i])
		}
	}
	return down, nil
}

// call sends one peer query.
func (f *fleet) call(peer string, q peerQuery) (peerAnswer, error) {
	body, err := json.Marshal(q)
	if err != nil {
		return peerAnswer{}, err
	}
	ctx, cancel := context.WithTimeout(f.ctx, peerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, peer+"/api/v1/peer/query", bytes.NewReader(body))
	if err != nil {
		return peerAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if f.auth != "" {
		req.Header.Set("Authorization", f.auth)
	}
	resp, err := f.a.peerClient.Do(req)
	if err != nil {
		return peerAnswer{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return peerAnswer{}, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	var out peerAnswer
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return peerAnswer{}, fmt.Errorf("answer: %w", err)
	}
	return out, nil
}

// peerN is how many keys each aggregator is asked for to merge a top n: a
// key's flows are spread over the aggregators when records are keyed by
// flow, and a key one of them does not list is only bounded (its
// threshold). A thousand keys (72 B each on the wire) keep the usual top
// exact where it matters; a table of fewer keys comes whole.
func peerN(n int) int { return min(max(10*n, 1000), n+100_000) }

func (f *fleet) Top(sc topn.Scope, d topn.Dim, from, to time.Time, n int, m topn.Metric) (query.Result, error) {
	rs := []query.Result{{}}
	down, err := f.ask(peerQuery{Op: "top", Scope: sc, Dim: d, From: from, To: to, N: peerN(n), Metric: m},
		func() (err error) { rs[0], err = f.a.deps.Engine.Top(sc, d, from, to, peerN(n), m); return },
		func(p peerAnswer) error {
			t, err := tablecodec.Decode(p.Table)
			if err != nil {
				return err
			}
			rs = append(rs, query.Result{Table: t, Answer: p.Answer})
			return nil
		})
	if err != nil {
		return query.Result{}, err
	}
	out := query.MergeTop(rs, n, m)
	for _, p := range down {
		out.MissingPeer(p)
	}
	return out, nil
}

func (f *fleet) Series(sc topn.Scope, from, to time.Time, step time.Duration, d topn.Dim, key *topn.Key) (query.SeriesResult, error) {
	var out query.SeriesResult
	down, err := f.ask(peerQuery{Op: "series", Scope: sc, Dim: d, From: from, To: to, Step: step, Key: key},
		func() (err error) { out, err = f.a.deps.Engine.Series(sc, from, to, step, d, key); return },
		func(p peerAnswer) error {
			if len(p.Series) != len(out.Points) {
				return fmt.Errorf("%d steps, want %d", len(p.Series), len(out.Points))
			}
			out.MergeSeries(query.SeriesResult{Points: p.Series, Answer: p.Answer})
			return nil
		})
	for _, p := range down {
		out.MissingPeer(p)
	}
	return out, err
}

func (f *fleet) ReportKeys(sc topn.Scope, d topn.Dim, keys []topn.Key, from, to time.Time, step time.Duration) (query.ReportResult, error) {
	var out query.ReportResult
	down, err := f.ask(peerQuery{Op: "report_keys", Scope: sc, Dim: d, From: from, To: to, Step: step, Keys: keys},
		func() (err error) { out, err = f.a.deps.Engine.ReportKeys(sc, d, keys, from, to, step); return },
		func(p peerAnswer) error {
			switch {
			case p.Report == nil:
				return errors.New("no report in the answer")
			case len(p.Report.Rows) != len(out.Rows) || len(p.Report.Total) != len(out.Total):
				return fmt.Errorf("%d rows of %d steps, want %d of %d", len(p.Report.Rows), len(p.Report.Total), len(out.Rows), len(out.Total))
			}
			for i := range out.Rows {
				if p.Report.Rows[i].Key != out.Rows[i].Key {
					return fmt.Errorf("row %d is another key", i)
				}
			}
			out.MergeReport(*p.Report)
			return nil
		})
	for _, p := range down {
		out.MissingPeer(p)
	}
	return out, err
}

func (f *fleet) Report(sc topn.Scope, d topn.Dim, from, to time.Time, step time.Duration, n int, m topn.Metric) (query.ReportResult, error) {
	return query.RankedReport(func() (query.Result, error) { return f.Top(sc, d, from, to, n, m) },
		func(keys []topn.Key) (query.ReportResult, error) { return f.ReportKeys(sc, d, keys, from, to, step) }, d, n, m)
}

// warnPeer logs a peer's failure at most once a minute per peer.
func (a *API) warnPeer(peer string, err error) {
	now := a.deps.Clock().UnixNano()
	v, _ := a.peerWarned.LoadOrStore(peer, new(atomic.Int64))
	last := v.(*atomic.Int64)
	if l := last.Load(); now-l >= int64(time.Minute) && last.CompareAndSwap(l, now) {
		a.deps.Logger.Warn("peer did not answer: answers name it as unanswered", "peer", peer, "err", err)
	}
}
