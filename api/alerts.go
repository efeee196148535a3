package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tmsd/tmsd/internal/alerts"
)

// Alerts is the alert evaluator as the API reads and edits it:
// *alerts.Evaluator. Rules written here are the API's (kept in the store);
// the configuration file's are read-only here.
type Alerts interface {
	Alerts() []alerts.Status
	Rules() []alerts.Rule
	PutRule(alerts.Rule) (alerts.Rule, error)
	DeleteRule(name string) error
	SetAPIRules([]alerts.Rule) error
	Silence(alerts.Silence) (alerts.Silence, error)
	Silences() []alerts.Silence
	Unsilence(id string) error
	History(alerts.HistoryQuery) ([]alerts.Event, bool, error)
}

var _ Alerts = (*alerts.Evaluator)(nil)

// activeResponse is the answer of GET /api/v1/alerts/active.
type activeResponse struct {
	Firing  int             `json:"firing"`
	Pending int             `json:"pending"`
	Rules   int             `json:"rules"`
	Alerts  []alerts.Status `json:"alerts"`
}

// historyResponse is the answer of GET /api/v1/alerts.
type historyResponse struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Truncated: the range held more events than n; the oldest were left out.
	Truncated bool           `json:"truncated"`
	Events    []alerts.Event `json:"events"`
}

type rulesResponse struct {
	Rules []alerts.Rule `json:"rules"`
}

type silencesResponse struct {
	Silences []alerts.Silence `json:"silences"`
}

// silenceRequest is the body of POST /api/v1/alerts/silences.
type silenceRequest struct {
	Rule string `json:"rule"`
	Key  string `json:"key,omitempty"`
	// Until (RFC 3339, or relative: +2h is not taken, give for) or For (2h, 1d): one of the two.
	Until   string `json:"until,omitempty"`
	For     string `json:"for,omitempty"`
	Comment string `json:"comment,omitempty"`
}

var alertKinds = []string{string(alerts.KindFiring), string(alerts.KindResolved), string(alerts.KindRepeat), string(alerts.KindSilenced)}

var (
	pRuleName = param{name: "name", path: true, typ: "string", required: true, example: "https-seoul", desc: "The rule's name."}
	pSilence  = param{name: "id", path: true, typ: "string", required: true, example: "1", desc: "The silence's ID."}
)

// alertRoutes are the routes of /api/v1/alerts (routes() lists them).
func (a *API) alertRoutes() []route {
	return []route{
		{method: http.MethodGet, path: "/alerts/active", summary: "The alerts pending and firing now",
			desc:   "Per rule and key: the state, since when, the last minute's value against the threshold or baseline (bounded: the value is a lower bound, an any-key rule's row over a minute's top-K), and silenced. Baseline rules whose history is too short list their keys with the reason.",
			answer: activeResponse{}, handle: a.alertsActive},
		{method: http.MethodGet, path: "/alerts", summary: "The alert history: fired, resolved, repeated and silenced events", csv: true, ownRange: true,
			desc: "The events of the range (by the minute they are about), oldest first; at most n, the most recent kept. Kept for alerts.history_retention.",
			params: params(
				param{name: "state", typ: "string", enum: alertKinds, example: "firing", desc: "Only the events of this kind."},
				param{name: "rule", typ: "string", example: "https-seoul", desc: "Only the events of this rule."},
				param{name: "n", typ: "integer", def: "1000", min: 1, max: 100000, example: "100", desc: "At most this many events, the most recent."},
				pFrom("-24h"), pTo, pFormat),
			answer: historyResponse{}, handle: a.alertsHistory},
		{method: http.MethodGet, path: "/alerts/rules", summary: "The alert rules in force, the file's and the API's",
			answer: rulesResponse{}, handle: a.alertRules},
		{method: http.MethodPut, path: "/alerts/rules", admin: true, summary: "Replace every rule written through the API",
			desc: "The body is {\"rules\": [RULE…]} (docs/ALERTS.md). The whole set is validated first: a bad rule is a 400 naming the field, and the rules in force stay. The configuration file's rules are not touched (409 for a name the file defines).",
			body: rulesResponse{}, answer: rulesResponse{}, handle: a.putAlertRules},
		{method: http.MethodGet, path: "/alerts/rules/:name", summary: "One alert rule",
			params: params(pRuleName), answer: alerts.Rule{}, notFound: "No rule of that name.", handle: a.alertRule},
		{method: http.MethodPut, path: "/alerts/rules/:name", admin: true, summary: "Add or replace one rule through the API",
			desc:   "The body is the rule (docs/ALERTS.md), its name optional. It is validated first: a bad field is a 400 naming it, and the rules in force stay. A rule the configuration file defines is a 409. It takes effect from the next minute evaluated, and is kept in the store.",
			params: params(pRuleName), body: alerts.Rule{}, answer: alerts.Rule{}, handle: a.putAlertRule},
		{method: http.MethodDelete, path: "/alerts/rules/:name", admin: true, summary: "Delete a rule written through the API",
			params: params(pRuleName), answer: map[string]string{}, notFound: "No rule of that name.", handle: a.deleteAlertRule},
		{method: http.MethodGet, path: "/alerts/silences", summary: "The silences in force",
			answer: silencesResponse{}, handle: a.alertSilences},
		{method: http.MethodPost, path: "/alerts/silences", admin: true, status: http.StatusCreated, summary: "Silence a rule's alerts, of one key or all, until a time",
			desc: "While silenced, alerts still change state but notify nobody; the history records a silenced event. The silence is kept in the store.",
			body: silenceRequest{}, answer: alerts.Silence{}, handle: a.postSilence},
		{method: http.MethodDelete, path: "/alerts/silences/:id", admin: true, summary: "End a silence",
			params: params(pSilence), answer: map[string]string{}, notFound: "No silence of that ID.", handle: a.deleteSilence},
	}
}

var errNoAlerts = echo.NewHTTPError(http.StatusNotFound, "alerts are not evaluated by this process")

func (a *API) alertsActive(c echo.Context, _ *request) error {
	if a.deps.Alerts == nil {
		return errNoAlerts
	}
	res := activeResponse{Alerts: a.deps.Alerts.Alerts(), Rules: len(a.deps.Alerts.Rules())}
	if res.Alerts == nil {
		res.Alerts = []alerts.Status{}
	}
	for _, s := range res.Alerts {
		switch s.State {
		case alerts.StateFiring:
			res.Firing++
		case alerts.StatePending:
			res.Pending++
		}
	}
	return c.JSON(http.StatusOK, res)
}

func (a *API) alertsHistory(c echo.Context, q *request) error {
	if a.deps.Alerts == nil {
		return errNoAlerts
	}
	r := a.routeOf(http.MethodGet, "/alerts")
	val := func(name string) (string, bool) {
		if s := c.QueryParam(name); s != "" {
			return s, true
		}
		return r.byName[name].def, false
	}
	w, err := a.parseWindow(val, q.now, time.Minute)
	if err != nil {
		return err
	}
	hq := alerts.HistoryQuery{From: w.from, To: w.to, Kind: alerts.Kind(c.QueryParam("state")), Rule: c.QueryParam("rule")}
	if s := hq.Kind; s != "" && !isOneOf(string(s), alertKinds) {
		return badParam("state", "unknown state %q: one of %s", s, strings.Join(alertKinds, ", "))
	}
	ns, _ := val("n")
	if hq.Limit, err = parseN(ns, r.byName["n"]); err != nil {
		return err
	}
	evs, cut, err := a.deps.Alerts.History(hq)
	if errors.Is(err, alerts.ErrNoHistory) {
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []alerts.Event{}
	}
	if q.csv {
		return writeCSV(c, "alerts", historyCSV(evs))
	}
	return c.JSON(http.StatusOK, historyResponse{From: w.from.UTC().Format(time.RFC3339), To: w.to.UTC().Format(time.RFC3339), Truncated: cut, Events: evs})
}

func isOneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// historyCSV is the history as CSV: one row per event, the JSON's fields.
func historyCSV(evs []alerts.Event) [][]string {
	rows := [][]string{{"at", "kind", "rule", "severity", "scope", "dim", "key", "label", "metric", "value", "threshold", "baseline", "bounded", "error", "since", "ends_at", "summary", "url"}}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, e := range evs {
		rows = append(rows, []string{ts(e.At), string(e.Kind), e.Rule, e.Severity, e.Scope, e.Dim, e.Key, e.Label, e.Metric,
			num(e.Value), num(e.Threshold), num(e.Baseline), strconv.FormatBool(e.Bounded), num(e.Error), ts(e.Since), ts(e.EndsAt), e.Summary, e.URL})
	}
	return rows
}

func (a *API) alertRules(c echo.Context, _ *request) error {
	if a.deps.Alerts == nil {
		return errNoAlerts
	}
	return c.JSON(http.StatusOK, rulesResponse{Rules: nonNil(a.deps.Alerts.Rules())})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (a *API) alertRule(c echo.Context, _ *request) error {
	if a.deps.Alerts == nil {
		return errNoAlerts
	}
	name := c.Param("name")
	for _, r := range a.deps.Alerts.Rules() {
		if r.Name == name {
			return c.JSON(http.StatusOK, r)
		}
	}
	return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no alert rule %q", name))
}

func (a *API) putAlertRule(c echo.Context, _ *request) error {
	if a.deps.Alerts == nil {
		return errNoAlerts
	}
	name := c.Param("name")
	var r alerts.Rule
	if err := decodeBody(c, &r); err != nil {
		return err
	}
	switch {
	case r.Name == "":
		r.Name = name
	case r.Name != name:
		return badParam("name", "the body's name %q is not the path's %q", r.Name, name)
	}
	r.Origin = ""
	in, err := a.deps.Alerts.PutRule(r)
	if err != nil {
		return alertError(err)
	}
	a.deps.Logger.Info("alert rule written through the API", "rule", name)
	return c.JSON(http.StatusOK, in)
}

func (a *API) putAlertRules(c echo.Context, _ *request) error {
	if a.deps.Alerts == nil {
		return errNoAlerts
	}
	var body rulesResponse
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	if body.Rules == nil {
		return badParam("rules", "missing: the body is {\"rules\": [RULE…]} ([] deletes every API rule)")
	}
	if err := a.deps.Alerts.SetAPIRules(body.Rules); err != nil {
		return alertError(err)
	}
	a.deps.Logger.Info("alert rules replaced through the API", "rules", len(body.Rules))
	return c.JSON(http.StatusOK, rulesResponse{Rules: nonNil(a.deps.Alerts.Rules())})
}

func (a *API) deleteAlertRule(c echo.Context, _ *request) error {
	if a.deps.Alerts == nil {
		return errNoAlerts
	}
	name := c.Param("name")
	if err := a.deps.Alerts.DeleteRule(name); err != nil {
		return alertError(err)
	}
	a.deps.Logger.Info("alert rule deleted through the API", "rule", name)
	return c.JSON(http.StatusOK, map[string]string{"deleted": name})
}

func (a *API) alertSilences(c echo.Context, _ *request) error {
	if a.deps.Alerts == nil {
		return errNoAlerts
	}
	return c.JSON(http.StatusOK, silencesResponse{Silences: nonNil(a.deps.Alerts.Silences())})
}

func (a *API) postSilence(c echo.Context, q *request) error {
	if a.deps.Alerts == nil {
		return errNoAlerts
	}
	var body silenceRequest
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	s := alerts.Silence{Rule: body.Rule, Key: body.Key, Comment: body.Comment}
	switch {
	case body.Until != "" && body.For != "":
		return badParam("for", "give until or for, not both")
	case body.Until != "":
		t, err := parseTime(body.Until, q.now)
		if err != nil {
			return badParam("until", "%v", err)
		}
		s.Until = t.UTC()
	case body.For != "":
		d, err := ParseDuration(body.For)
		if err != nil || d <= 0 {
			return badParam("for", "not a positive duration (90m, 2h, 1d): %q", body.For)
		}
		s.Until = q.now.Add(d).UTC()
	default:
		return badParam("until", "missing: give until (RFC 3339) or for (2h)")
	}
	known := false
	for _, r := range a.deps.Alerts.Rules() {
		known = known || r.Name == s.Rule
	}
	if s.Rule != "" && !known {
		return badParam("rule", "no alert rule %q", s.Rule)
	}
	out, err := a.deps.Alerts.Silence(s)
	if err != nil {
		return alertError(err)
	}
	a.deps.Logger.Info("alert silenced through the API", "rule", out.Rule, "key", out.Key, "until", out.Until, "id", out.ID)
	return c.JSON(http.StatusCreated, out)
}

func (a *API) deleteSilence(c echo.Context, _ *request) error {
	if a.deps.Alerts == nil {
		return errNoAlerts
	}
	id := c.Param("id")
	if err := a.deps.Alerts.Unsilence(id); err != nil {
		return alertError(err)
	}
	return c.JSON(http.StatusOK, map[string]string{"deleted": id})
}

// alertError maps the evaluator's errors to answers: a rule's or a
// silence's bad field is a 400 naming it.
func alertError(err error) error {
	var re *alerts.RuleError
	var se *alerts.SilenceError
	switch {
	case errors.As(err, &re):
		return badParam(re.Field, "%v", err)
	case errors.As(err, &se):
		return badParam(se.Field, "%v", err)
	case errors.Is(err, alerts.ErrFileRule):
		return echo.NewHTTPError(http.StatusConflict, err.Error())
	case errors.Is(err, alerts.ErrUnknownRule), errors.Is(err, alerts.ErrUnknownSilence):
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	return err
}

// decodeBody reads a JSON body into v, strictly: an unknown field, a value
// of the wrong type or trailing data is a 400 naming what is at fault.
func decodeBody(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var te *json.UnmarshalTypeError
	var me *http.MaxBytesError
	switch {
	case err == nil:
	case errors.As(err, &me):
		return err
	case errors.Is(err, io.EOF):
		return badParam("body", "empty: a JSON object is expected")
	case errors.As(err, &te) && te.Field != "":
		return badParam(te.Field, "%s is %s, not %s", te.Field, te.Value, te.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badParam(name, "not a field of the body (docs/ALERTS.md lists them)")
	default:
		return badParam("body", "not valid JSON: %v", err)
	}
	if dec.More() {
		return badParam("body", "more than one JSON value")
	}
	return nil
}
