package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tmsd/tmsd/internal/topn"
)

// The routes of /api/v1 are declared once, here: method, path, parameters
// (with their types, defaults, enums and descriptions), the answer's Go type
// and the handler. From the declarations come the routes Echo serves, the
// strictness of every request (an undeclared or repeated parameter is a 400
// naming it, a known path with another method a 405 with Allow), the parsing
// of a query's parameters (parseRequest reads the declared defaults and enums)
// and the OpenAPI document (openapi.go). Adding a route is adding an entry to
// routes().

// param declares one parameter of a route.
type param struct {
	name string
	// path: a path parameter (":name" in the route's path); else a query one.
	path     bool
	typ      string // "string" or "integer"
	required bool
	// def is the value the handler takes when the parameter is absent or
	// empty ("": none); enum the values it takes, when a closed set.
	def  string
	enum []string
	// min and max bound an integer (max 0: none).
	min, max int
	// example is a valid value, shown in the document.
	example string
	desc    string
}

// route declares one endpoint of /api/v1.
type route struct {
	method string
	path   string // under /api/v1, as Echo takes it: /exporters/:addr
	// admin routes need an admin token; the others a read token.
	admin         bool
	summary, desc string
	params        []param
	answer        any    // the Go value whose JSON the 200 answer is (its type gives the schema)
	csv           bool   // also answers text/csv (format=csv or Accept)
	body          any    // the Go value whose JSON the request body is (nil: none)
	status        int    // the success status (0: 200)
	ownRange      bool   // the handler reads from and to itself: no tier retention applies
	notFound      string // when set, the route answers 404 for what it names
	// traffic routes answer from counted traffic (Configuration.NoTraffic).
	traffic    bool
	handle     func(c echo.Context, q *request) error
	byName     map[string]*param
	queryNames []string // the query parameters, sorted, for messages
}

func (r *route) init() {
	r.byName = map[string]*param{}
	for i := range r.params {
		p := &r.params[i]
		r.byName[p.name] = p
		if !p.path {
			r.queryNames = append(r.queryNames, p.name)
		}
	}
	slices.Sort(r.queryNames)
}

// The parameters shared by several routes. Functions where a route sets its own default.

func pBy(required bool) param {
	p := param{name: "by", typ: "string", required: required, enum: strings.Split(topn.DimNames(), ", "), example: "app",
		desc: "The dimension: app, proto, srcip, dstip, ip (either side), srcport, dstport, port (either side), exporter, in_if, out_if (EXPORTER:IFINDEX), peer (with ip= only), srccountry, dstcountry, country (either side; two letters, unknown), srcas, dstas, as (either side; 0 unknown), appgroup (the group= of the app rules; ungrouped for the apps none gave one)."}
	if !required {
		p.desc += " With key= (one key's series) or n= (the top n keys' series, stacked)."
	}
	return p
}

func pN(def string, maxN int) param {
	p := param{name: "n", typ: "integer", def: def, min: 1, max: maxN, example: "10", desc: "How many keys, the largest first."}
	if def == "" {
		p.desc = "Stack the series of the top n keys of by (by the metric), plus other; excludes key."
	}
	return p
}

var (
	pMetric = param{name: "metric", typ: "string", def: "bytes", enum: []string{"bytes", "packets", "flows"}, example: "packets",
		desc: "What the keys are ranked by; share is of this metric."}
	pTo = param{name: "to", typ: "string", def: "now", example: "now",
		desc: "End of the range: RFC 3339, unix seconds, now, or relative (-15m, -24h, -7d). Widened up to a whole step (a minute for a top)."}
	pCompare = param{name: "compare", typ: "string", enum: []string{"1d", "7d", "28d", "prev"}, example: "1d",
		desc: "Add the same query over an earlier period: 1d, 7d or 28d before, or prev (the period of the same length just before)."}
	pFormat = param{name: "format", typ: "string", def: "json", enum: []string{"json", "csv"}, example: "csv",
		desc: "The answer's format; Accept: text/csv also asks for CSV."}
	pKey = param{name: "key", typ: "string", example: "https",
		desc: "One key of by (an app, an address, 443/tcp, EXPORTER:IFINDEX…): its series; excludes n."}
	pAddr = param{name: "addr", path: true, typ: "string", required: true, example: "192.0.2.1", desc: "The exporter's address."}
)

func pFrom(def string) param {
	return param{name: "from", typ: "string", def: def, example: "-1h",
		desc: "Start of the range: RFC 3339, unix seconds, now, or relative (-15m, -24h, -7d). Widened down to a whole step (a minute for a top)."}
}

func pStepReport() param {
	return param{name: "step", typ: "string", def: "5m", enum: []string{"1m", "5m", "1h"}, example: "1h",
		desc: "The step of the peak and the 95th percentile."}
}

var pStepSeries = param{name: "step", typ: "string", def: "1m", example: "5m",
	desc: "The step of the points: a whole number of minutes (60s, 5m, 1h, 1d); steps of 1h and 1d are served from the hour and day tiers."}

// scopeParams are the scope filters, one at a time (dir goes with if).
var scopeParams = []param{
	{name: "exporter", typ: "string", example: "192.0.2.1", desc: "Scope: one exporter's flows."},
	{name: "proto", typ: "string", example: "tcp", desc: "Scope: one IP protocol (a number or a name: tcp, udp, icmp…)."},
	{name: "if", typ: "string", example: "192.0.2.1:3", desc: "Scope: one interface, EXPORTER:IFINDEX, with dir (needs aggregate.scope_interface)."},
	{name: "dir", typ: "string", enum: []string{"in", "out"}, example: "in", desc: "With if: the flows entering (in) or leaving (out) by the interface."},
	{name: "app", typ: "string", example: "https", desc: "Scope: one application's flows, a drill-down (needs aggregate.drill_downs)."},
	{name: "ip", typ: "string", example: "10.0.0.2", desc: "Scope: the flows of one address, either side, a drill-down (needs aggregate.drill_downs)."},
}

func params(ps ...any) []param {
	var out []param
	for _, p := range ps {
		switch p := p.(type) {
		case param:
			out = append(out, p)
		case []param:
			out = append(out, p...)
		}
	}
	return out
}

// routes declares /api/v1.
func (a *API) routes() []route {
	maxN := a.cfg.MaxN
	return append([]route{
		{method: http.MethodGet, path: "/top", summary: "The top keys of a dimension over a range", csv: true,
			desc:   "Rows of the n largest keys by metric, with other and total; totals are exact, error bounds a row's under-count.",
			params: params(pBy(true), pN("10", maxN), pMetric, pFrom("-1h"), pTo, pCompare, pFormat, scopeParams),
			answer: topResponse{}, handle: a.top, traffic: true},
		{method: http.MethodGet, path: "/series", summary: "Totals, one key's, or the top keys' series per step", csv: true,
			desc:   "Points per step over the range: the scope's total, one key's series (by, key), or the top n keys' stacked (by, n).",
			params: params(pBy(false), pKey, pN("", maxN), pMetric, pStepSeries, pFrom("-1h"), pTo, pCompare, pFormat, scopeParams),
			answer: seriesResponse{}, handle: a.series, traffic: true},
		{method: http.MethodGet, path: "/report", summary: "A capacity report: totals, average, peak and 95th percentile per key", csv: true,
			desc:   "Per key of the top n by metric, plus other and total: volumes, average rates, the peak step and the 95th percentile of the steps' bps.",
			params: params(pBy(true), pN("10", maxN), pMetric, pStepReport(), pFrom("-24h"), pTo, pCompare, pFormat, scopeParams),
			answer: reportResponse{}, handle: a.report, traffic: true},
		{method: http.MethodPost, path: "/peer/query", summary: "One aggregator's own answer, for a query across aggregators",
			desc: "What an aggregator configured with peers (api.peers) asks each of them: one engine call (op top, series or report_keys) over this aggregator's traffic alone. Tables come in the store's binary framing. Not meant for clients: /top, /series and /report merge these answers.",
			body: peerQuery{}, answer: peerAnswer{}, handle: a.peerQuery, traffic: true},
		{method: http.MethodGet, path: "/exporters", summary: "The exporters seen and their decoders' counters",
			answer: exportersResponse{}, handle: a.exporters},
		{method: http.MethodGet, path: "/rejected", summary: "The sources whose datagrams the allow-list refused, heaviest first",
			answer: rejectedResponse{}, handle: a.rejected},
		{method: http.MethodGet, path: "/data", summary: "Where the data is: the spans the store's tiers and the open minutes hold",
			desc:   "Each span is [from, to) in RFC 3339, to pass as they are to a query's from= and to=; from and to are null on an empty store.",
			answer: dataResponse{}, traffic: true, handle: func(c echo.Context, _ *request) error { return a.data(c) }},
		{method: http.MethodGet, path: "/capabilities", summary: "The scope filters this tmsd keeps tables for",
			answer: Capabilities{}, handle: func(c echo.Context, _ *request) error { return c.JSON(http.StatusOK, a.deps.Capabilities) }},
		{method: http.MethodGet, path: "/config", admin: true, summary: "The effective configuration, secrets redacted",
			answer: map[string]any{}, handle: a.config},
		{method: http.MethodDelete, path: "/exporters/:addr", admin: true, summary: "Forget an exporter's templates, sampling rates and counters",
			params: params(pAddr), answer: map[string]string{}, notFound: "No exporter of that address.", handle: a.forget},
		{method: http.MethodPost, path: "/admin/reload", admin: true, summary: "Reload the application rules and the exporter and interface names from the configuration file",
			desc:   "As SIGHUP. The file is validated first: a bad rule is refused (400, with FILE:LINE and the reason) and the rules in force stay. New rules classify the flows of the next minute on; answers over a range holding that minute list it in rules_changed.",
			answer: ReloadResult{}, notFound: "tmsd was started without a configuration file.", handle: a.reload},
		{method: http.MethodGet, path: "/openapi.json", summary: "This document",
			answer: map[string]any{}, handle: a.openapi},
	}, a.alertRoutes()...)
}

// routeOf is the declared route of method and path.
func (a *API) routeOf(method, path string) *route {
	for i := range a.decl {
		if a.decl[i].method == method && a.decl[i].path == path {
			return &a.decl[i]
		}
	}
	panic("api: no route " + method + " " + path)
}

// handler wraps a route's handler in the strictness check and the parsing
// of its parameters.
func (a *API) handler(r *route) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := r.strict(c); err != nil {
			return err
		}
		q, err := a.parseRequest(c, r)
		if err != nil {
			return err
		}
		return r.handle(c, q)
	}
}

// strict refuses a query parameter the route does not declare (a typo would
// otherwise be ignored: metrics=packets answering by bytes) and one given
// twice (which of by=app&by=ip would count?).
func (r *route) strict(c echo.Context) error {
	qs := c.QueryParams()
	names := make([]string, 0, len(qs))
	for name := range qs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := r.byName[name]
		if p == nil || p.path {
			msg := "not a parameter of /api/v1" + r.path
			if near := nearest(name, r.queryNames); near != "" {
				msg += " (did you mean " + near + "?)"
			}
			if len(r.queryNames) == 0 {
				return badParam(name, "%s, which takes none", msg)
			}
			return badParam(name, "%s, which takes %s", msg, strings.Join(r.queryNames, ", "))
		}
		if n := len(qs[name]); n > 1 {
			return badParam(name, "given %d times: give it once", n)
		}
	}
	return nil
}

// nearest is the name of names closest to s, when it is a likely typo.
func nearest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD && d < len(n) {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance counts the edits from a to b: insertions, deletions,
// substitutions and swaps of two neighbours (form for from is one).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// noRoute answers what no route of /api/v1 matched: 405 with Allow when the
// path is a declared one with other methods (Echo would say 404 here, its
// group catch-all matching first), 204 with Allow to OPTIONS, else 404.
func (a *API) noRoute(c echo.Context) error {
	path := c.Request().URL.Path
	var allow []string
	for i := range a.decl {
		if r := &a.decl[i]; matchPath("/api/v1"+r.path, path) && !slices.Contains(allow, r.method) {
			allow = append(allow, r.method)
		}
	}
	if len(allow) == 0 {
		return echo.ErrNotFound
	}
	slices.Sort(allow)
	allowed := strings.Join(allow, ", ")
	c.Response().Header().Set(echo.HeaderAllow, allowed+", "+http.MethodOptions)
	if c.Request().Method == http.MethodOptions {
		return c.NoContent(http.StatusNoContent)
	}
	return echo.NewHTTPError(http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s: use %s", c.Request().Method, path, allowed))
}

// matchPath reports whether path matches an Echo pattern of static segments and :params.
func matchPath(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if strings.HasPrefix(ps[i], ":") {
			if xs[i] == "" {
				return false
			}
			continue
		}
		if ps[i] != xs[i] {
			return false
		}
	}
	return true
}
