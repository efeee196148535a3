// Package api owns tmsd's HTTP surface: the JSON REST API (top, series,
// report, exporters, admin, its OpenAPI document), /healthz and /metrics, on
// Echo. Routes are declared once (routes.go); one pipeline parses and checks a
// query's parameters (request.go: 400 naming the parameter); handlers shape
// answers, the query package computes.
// Optional bearer tokens (read, admin) guard it; the server bounds time and sizes, with optional TLS.
package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tmsd/tmsd/internal/decode"
	"github.com/tmsd/tmsd/internal/decode/listen"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/query"
	"github.com/tmsd/tmsd/internal/topn"
)

// Configuration of the HTTP server.
type Configuration struct {
	Listen string
	// MaxN caps the n parameter.
	MaxN int
	// MaxRange caps the queried range.
	MaxRange time.Duration
	// Static, when set, serves the dashboard at /.
	Static http.Handler

	// ReadTokens and AdminTokens are the hashes of the accepted bearer
	// tokens. Read covers the queries and /metrics; admin covers everything.
	// None at all leaves the API open.
	ReadTokens, AdminTokens []TokenHash
	// TLSCert and TLSKey are PEM files; both set serves HTTPS, neither HTTP.
	TLSCert, TLSKey string

	// Bounds on what one client can hold or send.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
	MaxBodyBytes                                              int64

	// NoTraffic, when set, is why this process counts no traffic (a
	// collector, whose flows the aggregators count): the routes that answer
	// from counted traffic answer 404 with it rather than empty tables.
	NoTraffic string

	// Peers are the base URLs of the other aggregators of this one's Kafka
	// group: top, series and report answer for all of them (peers.go).
	Peers []string
}

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{Listen: ":8080", MaxN: 10000, MaxRange: 400 * 24 * time.Hour,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		// The longest query (400 days of minutes) must fit in WriteTimeout.
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 16 << 10,
		// No endpoint takes more than a few parameters in its body.
		MaxBodyBytes: 64 << 10,
	}
}

// Exporters lists what the decoders know of each exporter, and forgets one.
type Exporters interface {
	Exporters() []decode.ExporterStats
	Forget(addr netip.Addr) bool
}

// Published tells, per exporter, the flows a collector dropped because
// Kafka would not take them.
type Published interface {
	Dropped() map[netip.Addr]uint64
}

// Offenders lists the sources of datagrams refused by the listeners' allow-list.
type Offenders interface {
	Snapshot() (total uint64, top []listen.Offender)
}

// Corrections tells how many flows per exporter had their timestamp corrected.
type Corrections interface {
	TimeCorrections() map[flow.Addr]uint64
}

// PortNamer names a well-known port, for labels such as "443/tcp https".
type PortNamer interface {
	PortName(proto uint8, port uint16) (string, bool)
}

// Names labels exporters, interfaces, countries and ASes, and finds an
// interface by its name.
type Names interface {
	ExporterName(exporter netip.Addr) string
	// InterfaceLabel is "seoul-bb1 xe-0/0/1 (to KT)", "" when unnamed.
	InterfaceLabel(exporter netip.Addr, ifIndex uint32) string
	CountryName(cc [2]byte) string
	ASName(as uint32) string
	FindInterface(name string) (netip.Addr, uint32, error)
	InterfaceNames(exporter netip.Addr) map[uint32]InterfaceName
}

// Reloader re-reads the rules and names of the configuration file
// (POST /api/v1/admin/reload); a bad file is refused and the old set stays.
type Reloader interface {
	Reload() (ReloadResult, error)
	// RuleChanges are the minutes from which a reload changed the
	// application rules, within [from, to): the answers that span one say so.
	RuleChanges(from, to time.Time) []time.Time
}

// ReloadResult is what a reload changed.
type ReloadResult struct {
	// From is the minute from which the new rules classify flows.
	From    string   `json:"from"`
	Changed []string `json:"changed"`
	// Restart lists keys the file changed that take effect only at a restart.
	Restart []string `json:"restart,omitempty"`
}

// Dependencies of the API.
type Dependencies struct {
	Engine      *query.Engine
	Exporters   Exporters
	Corrections Corrections
	Ports       PortNamer
	Names       Names     // nil: keys are their own labels
	Reloader    Reloader  // nil: no reload
	Alerts      Alerts    // nil: the /alerts routes answer 404
	Offenders   Offenders // nil: no listener, nothing refused
	// Published, on a collector, counts per exporter the flows Kafka could
	// not take (unreachable past the producer's buffer); nil elsewhere.
	Published Published
	// Retention bounds the ranges queries may ask (nil: no check).
	Retention Retention
	// Capabilities are what GET /api/v1/capabilities shows (zero: the
	// scopes every tmsd has, exporter and proto).
	Capabilities Capabilities
	// Config is the effective configuration GET /api/v1/config shows, as
	// JSON; its secrets must already be redacted.
	Config   any
	Registry *prometheus.Registry
	Clock    func() time.Time
	Logger   *slog.Logger
}

// Capabilities tell a client such as the dashboard which scope filters have
// tables here, and for each one without, the configuration key that turns it
// on: the dashboard offers only what answers. Unlike /config it holds nothing
// sensitive, so a read token gets it.
type Capabilities struct {
	// Scopes are the filters with tables: exporter, proto, if, app, ip.
	Scopes []string `json:"scopes"`
	// Off maps a filter without tables to the configuration key enabling it.
	Off map[string]string `json:"off"`
}

// API is the HTTP component.
type API struct {
	cfg  Configuration
	deps Dependencies
	auth *authenticator
	echo *echo.Echo
	decl []route // the routes of /api/v1
	doc  []byte  // their OpenAPI document, as JSON
	ln   net.Listener
	tls  bool
	done chan error

	peerClient   *http.Client
	peerFailures prometheus.Counter
	peerWarned   sync.Map // peer → *atomic.Int64, unix ns of its last warning
}

// New validates the configuration and builds the routes; it opens nothing.
func New(cfg Configuration, deps Dependencies) (*API, error) {
	switch {
	case cfg.MaxN <= 0:
		return nil, errors.New("api: max_n must be positive")
	case cfg.MaxRange <= 0:
		return nil, errors.New("api: max_range must be positive")
	case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
		return nil, errors.New("api: tls_cert and tls_key (--tls-cert, --tls-key) go together: set both or neither")
	case cfg.ReadHeaderTimeout <= 0 || cfg.ReadTimeout <= 0 || cfg.WriteTimeout <= 0 || cfg.IdleTimeout <= 0:
		return nil, errors.New("api: server timeouts must be positive")
	case cfg.MaxHeaderBytes <= 0 || cfg.MaxBodyBytes <= 0:
		return nil, errors.New("api: header and body size limits must be positive")
	}
	if deps.Engine == nil || deps.Exporters == nil {
		return nil, errors.New("api: engine and exporters are required")
	}
	for _, p := range cfg.Peers {
		if err := CheckPeer(p); err != nil {
			return nil, fmt.Errorf("api: peers: %w", err)
		}
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	if deps.Capabilities.Scopes == nil {
		deps.Capabilities.Scopes = []string{"exporter", "proto"}
	}
	if deps.Capabilities.Off == nil {
		deps.Capabilities.Off = map[string]string{}
	}
	a := &API{cfg: cfg, deps: deps, peerClient: &http.Client{}}
	a.peerFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_api_peer_failures_total",
		Help: "Peer aggregators that did not answer a query across aggregators (the answer named them as unanswered)."})
	if err := deps.Registry.Register(a.peerFailures); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	var err error
	if a.auth, err = newAuthenticator(cfg, deps); err != nil {
		return nil, err
	}
	read, admin := a.auth.require(scopeRead), a.auth.require(scopeAdmin)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.errorHandler
	e.Server.ReadHeaderTimeout = cfg.ReadHeaderTimeout
	e.Server.ReadTimeout = cfg.ReadTimeout
	e.Server.WriteTimeout = cfg.WriteTimeout
	e.Server.IdleTimeout = cfg.IdleTimeout
	e.Server.MaxHeaderBytes = cfg.MaxHeaderBytes
	// net/http logs bad clients (TLS handshakes, broken connections) on its
	// own: at debug level, so that scanners cannot fill the log.
	e.Server.ErrorLog = slog.NewLogLogger(deps.Logger.Handler(), slog.LevelDebug)
	e.Pre(a.limitBody)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(deps.Registry, promhttp.HandlerOpts{})), read)
	// Profiles of a running collector are how its limits get found; they
	// also show its memory, hence admin.
	e.GET("/debug/pprof/*", echo.WrapHandler(http.DefaultServeMux), admin)
	// Everything under /api/v1 needs at least read, unknown paths included,
	// so that an endpoint added later is never open by mistake.
	// Its routes are declared in routes(): the strictness of their
	// parameters and the OpenAPI document come from the same declarations.
	g := e.Group("/api/v1", read)
	g.RouteNotFound("/*", a.noRoute)
	a.decl = a.routes()
	for i := range a.decl {
		r := &a.decl[i]
		r.init()
		var mw []echo.MiddlewareFunc
		if r.admin {
			mw = append(mw, admin)
		}
		h := a.handler(r)
		if cfg.NoTraffic != "" && r.traffic {
			h = func(echo.Context) error { return echo.NewHTTPError(http.StatusNotFound, cfg.NoTraffic) }
		}
		g.Add(r.method, r.path, h, mw...)
	}
	if a.doc, err = json.Marshal(a.openAPI()); err != nil {
		return nil, fmt.Errorf("api: the OpenAPI document: %w", err)
	}
	if cfg.Static != nil {
		e.GET("/*", echo.WrapHandler(cfg.Static))
	}
	a.echo = e
	return a, nil
}

// Handler is the API as an http.Handler, for tests.
func (a *API) Handler() http.Handler { return a.echo }

// Start listens and serves in the background, over TLS when configured.
func (a *API) Start() error {
	if a.cfg.TLSCert != "" {
		// Loaded before listening: a bad pair stops start-up, no socket left open.
		cert, err := tls.LoadX509KeyPair(a.cfg.TLSCert, a.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("api: TLS certificate and key: %w", err)
		}
		a.echo.Server.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		a.tls = true
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("api: listen %s: %w", a.cfg.Listen, err)
	}
	a.ln = ln
	if !a.auth.enabled() {
		if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
			a.deps.Logger.Warn("the API is open to anyone who can reach it: no api.read_tokens or api.admin_tokens configured (see tmsd token)",
				"http", ln.Addr().String())
		}
	}
	a.done = make(chan error, 1)
	go func() {
		if a.tls {
			a.done <- a.echo.Server.ServeTLS(ln, "", "")
			return
		}
		a.done <- a.echo.Server.Serve(ln)
	}()
	return nil
}

// Addr is the bound address (after Start).
func (a *API) Addr() net.Addr { return a.ln.Addr() }

// Stop shuts the server down, letting requests in flight finish.
func (a *API) Stop() error {
	if a.ln == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.echo.Server.Shutdown(ctx)
	if serveErr := <-a.done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// paramError is a bad request parameter: HTTP 400 naming it.
type paramError struct {
	param string
	msg   string
}

func (e *paramError) Error() string { return fmt.Sprintf("parameter %q: %s", e.param, e.msg) }

func badParam(param, format string, args ...any) error {
	return &paramError{param: param, msg: fmt.Sprintf(format, args...)}
}

func (a *API) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := http.StatusInternalServerError, map[string]string{"error": err.Error()}
	var pe *paramError
	var he *echo.HTTPError
	var me *http.MaxBytesError
	switch {
	case errors.As(err, &pe):
		status = http.StatusBadRequest
		body["parameter"] = pe.param
	case errors.As(err, &me):
		status = http.StatusRequestEntityTooLarge
		body["error"] = fmt.Sprintf("request body larger than %d bytes", me.Limit)
	case errors.As(err, &he):
		status = he.Code
		body["error"] = fmt.Sprint(he.Message)
	default:
		a.deps.Logger.Warn("request failed", "path", c.Path(), "err", err)
	}
	_ = c.JSON(status, body)
}

// amounts is a row's figures as JSON shows them.
type amounts struct {
	Bytes   uint64  `json:"bytes"`
	Packets uint64  `json:"packets"`
	Flows   uint64  `json:"flows"`
	Bps     float64 `json:"bps"`
	Pps     float64 `json:"pps"`
	Share   float64 `json:"share"`
}

func newAmounts(c, total topn.Counters, m topn.Metric, seconds float64) amounts {
	a := amounts{Bytes: c.Bytes, Packets: c.Packets, Flows: c.Flows,
		Bps: float64(c.Bytes) * 8 / seconds, Pps: float64(c.Packets) / seconds}
	if t := total.Get(m); t > 0 {
		a.Share = float64(c.Get(m)) / float64(t)
	}
	return a
}

type topRow struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	amounts
	Error uint64 `json:"error"`
	// Previous and Delta are set with compare=: the same key over the earlier period.
	Previous *amounts  `json:"previous,omitempty"`
	Delta    *topDelta `json:"delta,omitempty"`
}

// topDelta is a top row's change from the earlier period: Total in % of the
// ranked metric over the range, null when the earlier figure is zero (as in report).
type topDelta struct {
	Total *float64 `json:"total"`
}

// topTotals are the other and total lines of a top, with their comparison.
type topTotals struct {
	amounts
	Previous *amounts  `json:"previous,omitempty"`
	Delta    *topDelta `json:"delta,omitempty"`
}

type topResponse struct {
	By     string `json:"by"`
	Metric string `json:"metric"`
	Scope  string `json:"scope"`
	From   string `json:"from"`
	To     string `json:"to"`
	// OpenStep is the start of the minute still open, when the range holds it.
	OpenStep string `json:"open_step,omitempty"`
	Exact    bool   `json:"exact"`
	// Partial: a drill-down (app=, ip=) was not kept in some minute of the range.
	Partial bool `json:"partial"`
	// Unanswered are the peer aggregators whose traffic is missing (down
	// during the query): Partial is then set.
	Unanswered []string `json:"unanswered,omitempty"`
	// RulesChanged are the minutes of the range from which a reload
	// classified applications by other rules.
	RulesChanged []string      `json:"rules_changed,omitempty"`
	Tiers        []string      `json:"tiers"`
	Compare      *reportPeriod `json:"compare,omitempty"`
	Rows         []topRow      `json:"rows"`
	Other        topTotals     `json:"other"`
	Total        topTotals     `json:"total"`

	// CountsPerFlow is how many keys each flow counts under: 2 for ip and
	// port (both ends), 1 otherwise. Share is of the total (each flow once),
	// so the shares of all keys, other included, add up to CountsPerFlow, and
	// other is CountsPerFlow × total minus the rows.
	CountsPerFlow int `json:"counts_per_flow"`
}

func (a *API) top(c echo.Context, q *request) error {
	eng := a.engine(c)
	res, err := eng.Top(q.sc, q.d, q.w.from, q.w.to, q.n, q.m)
	if err != nil {
		return err
	}
	d, m := q.d, q.m
	t := res.Table
	rows, other := t.Top(d, q.n, m)
	secs := q.w.seconds()
	resp := topResponse{By: d.String(), Metric: m.String(), Scope: q.sc.String(), From: q.from(), To: q.to(), OpenStep: q.openStep(),
		Exact: res.Exact, Partial: res.Partial, Tiers: res.Tiers, Rows: make([]topRow, 0, len(rows)),
		Other: topTotals{amounts: newAmounts(other, t.Total, m, secs)}, Total: topTotals{amounts: newAmounts(t.Total, t.Total, m, secs)}}
	resp.CountsPerFlow = d.CountsPerFlow()
	resp.RulesChanged = a.rulesChanged(q)
	for _, r := range rows {
		resp.Rows = append(resp.Rows, topRow{Key: d.Format(r.Key), Label: a.label(d, r.Key),
			amounts: newAmounts(r.Value, t.Total, m, secs), Error: r.Error.Get(m)})
	}
	resp.Unanswered = res.Unanswered
	if err := a.compareTop(eng, &resp, rows, q); err != nil {
		return err
	}
	setAnswerHeaders(c, resp.Tiers, resp.Exact, resp.OpenStep)
	if q.csv {
		return writeCSV(c, "top-"+d.String(), topCSV(resp))
	}
	return c.JSON(http.StatusOK, resp)
}

// compareTop adds to a top the same keys over the period off earlier. The
// keys are looked up in the earlier tables (not ranked again there), so a key
// that was small then still has its figures. One step per day lets the hour
// and day tiers answer, as they answer the top itself.
func (a *API) compareTop(eng engine, resp *topResponse, rows []topn.Entry, q *request) error {
	keys := make([]topn.Key, len(rows))
	for i := range rows {
		keys[i] = rows[i].Key
	}
	var prev query.ReportResult
	e, err := q.compare(func(w window) (query.Answer, error) {
		var err error
		prev, err = eng.ReportKeys(q.sc, q.d, keys, w.from, w.to, 24*time.Hour)
		return prev.Answer, err
	})
	if e == nil || err != nil {
		return err
	}
	var total, other topn.Counters
	for _, p := range prev.Total {
		total.Add(p.Value)
	}
	for _, p := range prev.Other {
		other.Add(p.Value)
	}
	m, secs := q.m, e.w.seconds()
	link := func(now amounts, before topn.Counters) (*amounts, *topDelta) {
		b := newAmounts(before, total, m, secs)
		return &b, &topDelta{Total: pct(float64(metricOf(now, m)), float64(before.Get(m)))}
	}
	for i := range resp.Rows {
		resp.Rows[i].Previous, resp.Rows[i].Delta = link(resp.Rows[i].amounts, prev.Rows[i].Value)
	}
	resp.Other.Previous, resp.Other.Delta = link(resp.Other.amounts, other)
	resp.Total.Previous, resp.Total.Delta = link(resp.Total.amounts, total)
	resp.Compare = e.period()
	e.fold(&resp.Exact, &resp.Partial)
	return nil
}

// metricOf is an amount's count of metric m.
func metricOf(x amounts, m topn.Metric) uint64 {
	return topn.Counters{Bytes: x.Bytes, Packets: x.Packets, Flows: x.Flows}.Get(m)
}

// rulesChanged lists the reloads of application rules within the request's range.
func (a *API) rulesChanged(q *request) []string {
	if a.deps.Reloader == nil {
		return nil
	}
	var out []string
	for _, t := range a.deps.Reloader.RuleChanges(q.w.from, q.w.to) {
		out = append(out, t.UTC().Format(time.RFC3339))
	}
	return out
}

// Label is the human name of a key, as the answers' label fields give it:
// the app, "443/tcp https", "tcp", "seoul-bb1 xe-0/0/1", "AS4766 Korea Telecom".
func (a *API) Label(d topn.Dim, k topn.Key) string { return a.label(d, k) }

func (a *API) label(d topn.Dim, k topn.Key) string {
	switch d {
	case topn.DimProto:
		return topn.ProtoName(k[0])
	case topn.DimSrcPort, topn.DimDstPort, topn.DimPort:
		port, proto := k.Port()
		s := d.Format(k)
		if k.IsPortRange() {
			return s + " client ports"
		}
		if a.deps.Ports != nil {
			if name, ok := a.deps.Ports.PortName(proto, port); ok {
				s += " " + name
			}
		}
		return s
	case topn.DimInIf, topn.DimOutIf:
		if a.deps.Names != nil {
			if l := a.deps.Names.InterfaceLabel(k.Addr().Netip(), k.IfIndex()); l != "" {
				return l
			}
		}
		return ifLabel(d, k)
	case topn.DimExporter:
		if a.deps.Names != nil {
			if n := a.deps.Names.ExporterName(k.Addr().Netip()); n != "" {
				return n
			}
		}
	case topn.DimSrcCountry, topn.DimDstCountry, topn.DimCountry:
		if c := [2]byte{k[0], k[1]}; a.deps.Names != nil && c[0] >= 'A' && c[0] <= 'Z' {
			if n := a.deps.Names.CountryName(c); n != "" {
				return n
			}
		}
	case topn.DimSrcAS, topn.DimDstAS, topn.DimAS:
		s := d.Format(k)
		if as := k.AS(); as != 0 {
			s = "AS" + s
			if a.deps.Names != nil {
				if n := a.deps.Names.ASName(as); n != "" {
					s += " " + n
				}
			}
		} else if s == "0" {
			s = "unknown"
		}
		return s
	}
	return d.Format(k)
}

type seriesPoint struct {
	T       string  `json:"t"`
	Bps     float64 `json:"bps"`
	Pps     float64 `json:"pps"`
	Bytes   uint64  `json:"bytes"`
	Packets uint64  `json:"packets"`
	Flows   uint64  `json:"flows"`
	Error   uint64  `json:"error,omitempty"`
}

func newSeriesPoints(pts []query.Point, step time.Duration) []seriesPoint {
	secs := step.Seconds()
	out := make([]seriesPoint, len(pts))
	for i, p := range pts {
		out[i] = seriesPoint{T: p.T.UTC().Format(time.RFC3339), Bps: float64(p.Value.Bytes) * 8 / secs,
			Pps: float64(p.Value.Packets) / secs, Bytes: p.Value.Bytes, Packets: p.Value.Packets,
			Flows: p.Value.Flows, Error: p.Error.Bytes}
	}
	return out
}

// seriesKey is one stacked series: a key's, or "other" (the total minus the
// keys, over-counted by at most its error where the keys are bounds).
type seriesKey struct {
	Key    string        `json:"key"`
	Label  string        `json:"label"`
	Exact  bool          `json:"exact"`
	Points []seriesPoint `json:"points"`
}

// seriesData is what one period of a series answers.
type seriesData struct {
	Exact bool `json:"exact"`
	// Partial: a drill-down (app=, ip=) was not kept in some minute of the range.
	Partial bool `json:"partial"`
	// Unanswered are the peer aggregators whose traffic is missing (down
	// during the query): Partial is then set.
	Unanswered []string      `json:"unanswered,omitempty"`
	Tiers      []string      `json:"tiers"`
	Points     []seriesPoint `json:"points"`
	Stacked    []seriesKey   `json:"stacked,omitempty"`
}

type seriesCompare struct {
	Period string `json:"period"`
	From   string `json:"from"`
	To     string `json:"to"`
	seriesData
}

type seriesResponse struct {
	By    string `json:"by,omitempty"`
	Key   string `json:"key,omitempty"`
	N     int    `json:"n,omitempty"`
	Scope string `json:"scope"`
	From  string `json:"from"`
	To    string `json:"to"`
	Step  string `json:"step"`
	// OpenStep is the start of the step still open, when the range holds it.
	OpenStep string `json:"open_step,omitempty"`
	seriesData
	// Compare is the earlier period, point i matching point i of Points.
	Compare *seriesCompare `json:"compare,omitempty"`

	// CountsPerFlow, with n: as in top, so the stacked keys and other add up
	// to CountsPerFlow × the total at every step.
	CountsPerFlow int `json:"counts_per_flow,omitempty"`
}

func (a *API) series(c echo.Context, q *request) error {
	d, key, n, sc, step := q.d, q.key, q.n, q.sc, q.step
	eng := a.engine(c)
	var keys []topn.Key // the stacked keys, chosen on the current period
	period := func(w window) (seriesData, error) {
		if n == 0 {
			res, err := eng.Series(sc, w.from, w.to, step, d, key)
			return seriesData{Exact: res.Exact, Partial: res.Partial, Unanswered: res.Unanswered, Tiers: res.Tiers, Points: newSeriesPoints(res.Points, step)}, err
		}
		var res query.ReportResult
		var err error
		if keys == nil {
			res, err = eng.Report(sc, d, w.from, w.to, step, n, q.m)
			keys = make([]topn.Key, len(res.Rows))
			for i := range res.Rows {
				keys[i] = res.Rows[i].Key
			}
		} else {
			res, err = eng.ReportKeys(sc, d, keys, w.from, w.to, step)
		}
		if err != nil {
			return seriesData{}, err
		}
		out := seriesData{Exact: res.Exact, Partial: res.Partial, Unanswered: res.Unanswered, Tiers: res.Tiers, Points: newSeriesPoints(res.Total, step)}
		otherExact := true
		for _, r := range res.Rows {
			out.Stacked = append(out.Stacked, seriesKey{Key: d.Format(r.Key), Label: a.label(d, r.Key),
				Exact: r.Error.IsZero(), Points: newSeriesPoints(r.Points, step)})
			otherExact = otherExact && r.Error.IsZero()
		}
		out.Stacked = append(out.Stacked, seriesKey{Key: "other", Label: "other", Exact: otherExact, Points: newSeriesPoints(res.Other, step)})
		return out, nil
	}
	data, err := period(q.w)
	if err != nil {
		return err
	}
	resp := seriesResponse{Scope: sc.String(), From: q.from(), To: q.to(), Step: fmtStep(step), OpenStep: q.openStep(), seriesData: data}
	switch {
	case key != nil:
		resp.By, resp.Key = d.String(), d.Format(*key)
	case n > 0:
		resp.By, resp.N, resp.CountsPerFlow = d.String(), n, d.CountsPerFlow()
	}
	var prev seriesData
	e, err := q.compare(func(w window) (query.Answer, error) {
		var err error
		prev, err = period(w)
		return query.Answer{Exact: prev.Exact, Partial: prev.Partial, Tiers: prev.Tiers}, err
	})
	if err != nil {
		return err
	}
	if e != nil {
		p := e.period()
		resp.Compare = &seriesCompare{Period: p.Period, From: p.From, To: p.To, seriesData: prev}
		e.fold(&resp.Exact, &resp.Partial)
	}
	setAnswerHeaders(c, resp.Tiers, resp.Exact, resp.OpenStep)
	if q.csv {
		return writeCSV(c, "series", seriesCSV(resp))
	}
	return c.JSON(http.StatusOK, resp)
}

type exporterJSON struct {
	Address   string            `json:"address"`
	Protocols []string          `json:"protocols"`
	Datagrams uint64            `json:"datagrams"`
	Bytes     uint64            `json:"bytes"`
	Flows     uint64            `json:"flows"`
	Errors    map[string]uint64 `json:"errors"`
	Templates int               `json:"templates"`
	// Data sets that beat their template: held, decoded on its arrival, given up, waiting now.
	TemplatesExpired uint64                     `json:"templates_expired"`
	Held             uint64                     `json:"held"`
	Released         uint64                     `json:"released"`
	Dropped          uint64                     `json:"dropped"`
	Holding          int                        `json:"holding"`
	SamplingRate     uint32                     `json:"sampling_rate"`
	SamplingSource   string                     `json:"sampling_source"`
	TimeCorrections  uint64                     `json:"time_corrections"`
	LastSeen         string                     `json:"last_seen"`
	Interfaces       []decode.InterfaceCounters `json:"interfaces,omitempty"`
	// KafkaDropped (a collector) is the flows Kafka would not take.
	KafkaDropped *uint64 `json:"kafka_dropped,omitempty"`
	// Name is the exporter's (config, SNMP sysName, reverse DNS); "" unknown.
	Name string `json:"name,omitempty"`
	// InterfaceNames are its named interfaces by ifIndex.
	InterfaceNames map[string]InterfaceName `json:"interface_names,omitempty"`
}

// InterfaceName is what is known of an interface: from static config,
// options data or SNMP (Source).
type InterfaceName struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	SpeedMbps   uint64 `json:"speed_mbps,omitempty"`
	Source      string `json:"source"`
}

// exportersResponse is the answer of GET /api/v1/exporters.
type exportersResponse struct {
	Exporters []exporterJSON `json:"exporters"`
}

func (a *API) exporters(c echo.Context, _ *request) error {
	var corr map[flow.Addr]uint64
	if a.deps.Corrections != nil {
		corr = a.deps.Corrections.TimeCorrections()
	}
	list := a.deps.Exporters.Exporters()
	var dropped map[netip.Addr]uint64
	if a.deps.Published != nil {
		dropped = a.deps.Published.Dropped()
	}
	out := make([]exporterJSON, 0, len(list))
	for _, e := range list {
		errs := e.Errors
		if errs == nil {
			errs = map[string]uint64{}
		}
		// An exporter that sent only errors has decoded no protocol: a list, empty.
		protos := e.Protocols
		if protos == nil {
			protos = []string{}
		}
		out = append(out, exporterJSON{Address: e.Address.String(), Protocols: protos,
			Datagrams: e.Datagrams, Bytes: e.Bytes, Flows: e.Flows, Errors: errs, Templates: e.Templates,
			TemplatesExpired: e.TemplatesExpired, Held: e.Held, Released: e.Released, Dropped: e.Dropped, Holding: e.Holding,
			SamplingRate: e.SamplingRate, SamplingSource: e.SamplingSource,
			TimeCorrections: corr[flow.AddrFrom(e.Address)], LastSeen: e.LastSeen.UTC().Format(time.RFC3339),
			Interfaces: e.Interfaces})
		if dropped != nil {
			n := dropped[e.Address]
			out[len(out)-1].KafkaDropped = &n
		}
		if a.deps.Names != nil {
			j := &out[len(out)-1]
			j.Name = a.deps.Names.ExporterName(e.Address)
			for idx, n := range a.deps.Names.InterfaceNames(e.Address) {
				if j.InterfaceNames == nil {
					j.InterfaceNames = map[string]InterfaceName{}
				}
				j.InterfaceNames[strconv.FormatUint(uint64(idx), 10)] = n
			}
		}
	}
	return c.JSON(http.StatusOK, exportersResponse{Exporters: out})
}
