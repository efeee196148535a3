package main

// The dashboard in a real browser: Debian's Chromium, headless, driven over
// the DevTools protocol by chromedp, against tmsd in-process on a store
// seeded by `tmsd import` of the testdata captures.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/api"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/pcapsrc"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

var updateScreenshots = flag.Bool("screenshots", false, "write the dashboard screenshots into docs/screenshots (make screenshots)")

// chromium is Debian's browser (make test installs it); never a downloaded one.
func chromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Skip("chromium is not installed: the browser tests need Debian's chromium (make test installs it when run as root: apt-get install chromium)")
	return ""
}

// browser is one headless Chromium tab with the page's console errors,
// uncaught exceptions and failed loads collected.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
		chromedp.WindowSize(1440, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	return openTab(t, actx)
}

// tab opens another tab in the same browser, with its own console log.
func (b *browser) tab(t *testing.T) *browser { return openTab(t, b.ctx) }

func openTab(t *testing.T, parent context.Context) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	// The first Run starts the browser (or the tab): not under a timeout, which would end it with the call.
	require.NoError(t, chromedp.Do(ctx))
	b := &browser{ctx: ctx}
	msgs := chromedp.Console(ctx) // subscribed now, read below
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				b.mu.Lock()
				b.problems = append(b.problems, string(m.Type)+": "+m.Text+" "+m.URL)
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// takeProblems returns and forgets what the page reported so far.
func (b *browser) takeProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

func (b *browser) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, actions...))
}

// evalJS evaluates a JavaScript expression in the page and decodes its value.
func evalJS[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(t, err, js)
	return v
}

// eval evaluates a JavaScript expression and decodes its JSON value into out.
func (b *browser) eval(t *testing.T, js string, out any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(evalJS[[]byte](t, b, js), out), js)
}

// open loads the page at u (a new document) and waits for its view.
func (b *browser) open(t *testing.T, u string) {
	t.Helper()
	b.do(t, chromedp.Navigate(u))
	b.waitReady(t)
}

// setHash moves to another view in the same page, as a click on a link does.
func (b *browser) setHash(t *testing.T, hash string) {
	t.Helper()
	evalJS[chromedp.Void](t, b, fmt.Sprintf("location.hash = %q", hash))
	b.waitReady(t)
}

// waitReady waits until the view rendered for the current URL has its data
// (main#view data-state=ready once every panel has answered or failed).
func (b *browser) waitReady(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => { const v = document.getElementById('view');
		return !!v && v.dataset.state === 'ready' && v.dataset.route === location.hash })()`,
		chromedp.WithPollingTimeout(25*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	require.NoError(t, err, "view not ready")
	require.True(t, ok)
	// A value the code forgot to format shows as null, undefined or NaN.
	text := evalJS[string](t, b, `document.getElementById('view').innerText`)
	require.NotRegexp(t, `\b(null|undefined|NaN|Infinity)\b`, text)
}

func (b *browser) screenshot(t *testing.T, dir, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
}

// shownRow is a TopN table row as the page shows it.
type shownRow struct {
	Key   string   `json:"key"`
	Cells []string `json:"cells"`
}

func (b *browser) tableRows(t *testing.T, selector string) []shownRow {
	t.Helper()
	return evalJS[[]shownRow](t, b, fmt.Sprintf(`[...document.querySelectorAll(%q)].map(tr => ({key: tr.dataset.key || '', cells: [...tr.cells].map(td => td.textContent)}))`, selector+" tbody tr"))
}

// parseShown reads back a figure the page shows ("122 kbps", "4.00 Mbps", "41.7 %").
func parseShown(t *testing.T, s string) float64 {
	t.Helper()
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "\u202f")
	v, err := strconv.ParseFloat(num, 64)
	require.NoError(t, err, "figure %q", s)
	if unit == "%" {
		return v / 100
	}
	if iec := strings.HasSuffix(unit, "iB"); iec && len(unit) == 3 {
		for i := strings.IndexByte("KMGTP", unit[0]); i >= 0; i-- {
			v *= 1024
		}
	} else if unit != "" && !iec {
		if i := strings.IndexByte("kMGTP", unit[0]); i >= 0 { // "4.00 Mbps", or a count: "14.7 k"
			for ; i >= 0; i-- {
				v *= 1000
			}
		}
	}
	return v
}

// near: a figure shown with 3 significant digits is within 0.5 % (plus rounding slack).
func near(t *testing.T, want, got float64, msg string, args ...any) {
	t.Helper()
	require.InDelta(t, want, got, want*0.006+1e-9, append([]any{msg}, args...)...)
}

type apiTopAnswer struct {
	From, To string
	Rows     []struct {
		Key, Label   string
		Bps, Share   float64
		Bytes, Flows uint64
	}
}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.NoError(t, json.Unmarshal(body, out))
}

// startDashboard runs tmsd in-process on loopback ports chosen by the kernel.
func startDashboard(t *testing.T, data string, edit func(*Config)) *pipeline {
	t.Helper()
	cfg := defaultConfig()
	cfg.NetFlow, cfg.SFlow, cfg.HTTP, cfg.Data = []string{"127.0.0.1:0"}, []string{"127.0.0.1:0"}, "127.0.0.1:0", data
	cfg.Listener.Sockets = 1
	century := Duration(36500 * 24 * time.Hour) // the captures' minutes stay whenever the test runs
	cfg.Retention = Retention{Minute: century, Hour: century, Day: century}
	if edit != nil {
		edit(&cfg)
	}
	p, err := newPipeline(cfg, newLogger("warn"), time.Now)
	require.NoError(t, err)
	require.NoError(t, p.startServe(cfg))
	t.Cleanup(func() { require.NoError(t, p.stop()) })
	return p
}

// captureSpan is the time span of the minutes a capture's import fills.
func captureSpan(t *testing.T, pcap string) (time.Time, time.Time) {
	t.Helper()
	st, err := pcapsrc.Read(pcap, func(pcapsrc.Datagram) error { return nil })
	require.NoError(t, err)
	return st.First.Truncate(time.Minute), st.Last.Truncate(time.Minute).Add(time.Minute)
}

func TestDashboard(t *testing.T) {
	b := newBrowser(t) // first: skips at once when there is no chromium
	start := time.Now()

	// The store: every capture imported, as `tmsd import` does, but the one of
	// public addresses: recorded days after the others, in real time, its
	// minutes would stretch the range to days and land in the views' default
	// ranges (the last hour, day) the "no data here" subtest needs empty.
	// TestDashboardEnrichment shows it.
	files := slices.DeleteFunc(captures(t), func(f string) bool { return filepath.Base(f) == filepath.Base(publicCapture) })
	data := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(append([]string{"import", "--data", data, "--retention", "36500d"}, files...), &out, io.Discard))
	var from, to time.Time
	for _, f := range files {
		a, z := captureSpan(t, f)
		if from.IsZero() || a.Before(from) {
			from = a
		}
		if z.After(to) {
			to = z
		}
	}
	from, to = from.Add(-5*time.Minute), to.Add(5*time.Minute)
	rng := "from=" + from.UTC().Format(time.RFC3339) + "&to=" + to.UTC().Format(time.RFC3339)

	// Interface scopes and drill-downs off (both on by default): the views
	// must then say which key turns each on; a subtest below turns them on.
	p := startDashboard(t, data, func(c *Config) { c.Aggregate.DrillDowns, c.Aggregate.ScopeInterface = 0, false })
	base := "http://" + p.api.Addr().String()
	// Live datagrams too, for the exporters' status: NetFlow v5 and sampled sFlow.
	sent := replayPcap(t, p.netflowAddrs()[0], "../../testdata/pcaps/softflowd-v5.pcap")
	sent += replayPcap(t, p.sflowAddrs()[0], "../../testdata/pcaps/pmacct-sflow-sampled.pcap")
	waitDecoded(t, p, sent)
	t.Logf("store seeded in %s: %s", time.Since(start).Round(time.Millisecond), strings.ReplaceAll(strings.TrimSpace(out.String()), "\n", "; "))

	shots := t.TempDir()
	if *updateScreenshots {
		shots = "../../docs/screenshots"
		require.NoError(t, os.MkdirAll(shots, 0o755))
	}

	t.Run("overview loads with no console errors", func(t *testing.T) {
		b.open(t, base+"/")
		var n int
		b.eval(t, `document.querySelectorAll('[data-panel="exporters"] tbody tr').length`, &n)
		require.Equal(t, 1, n, "the live exporter 127.0.0.1")
		var row struct{ State, Status, Dot string }
		b.eval(t, `(() => { const tr = document.querySelector('[data-panel="exporters"] tbody tr');
			return {state: tr.dataset.state, status: tr.lastChild.textContent, dot: tr.querySelector('.dot').title} })()`, &row)
		require.Equal(t, "ok", row.State, "flows decoded, no error")
		require.Equal(t, "ok", row.Status)
		require.Contains(t, row.Dot, "ok: flows decoded")
		require.Empty(t, b.takeProblems())
	})

	t.Run("the live overview refreshes by itself", func(t *testing.T) {
		volume := func() string {
			return evalJS[string](t, b, `[...document.querySelectorAll('#view .kpi')].find(k => k.querySelector('.label').textContent === 'volume').querySelector('.value').textContent`)
		}
		before := volume()
		require.Equal(t, strconv.FormatUint(sent, 10), evalJS[string](t, b, `document.querySelector('[data-panel="exporters"] tbody tr td:nth-child(5)').textContent`))
		more := replayPcap(t, p.netflowAddrs()[0], "../../testdata/pcaps/softflowd-ipfix.pcap")
		require.Less(t, sent+more, uint64(1000), "shown without a k")
		require.Eventually(t, func() bool {
			var n uint64
			for _, e := range p.decoder.Exporters() {
				n += e.Datagrams
			}
			return n == sent+more
		}, 30*time.Second, 10*time.Millisecond, "datagrams received")
		require.NoError(t, p.agg.Sync(30*time.Second))
		// No reload: the page's 10 s refresh must bring the new datagrams and
		// flows (both in one condition: one refresh may read the decoder's count
		// before the aggregator has the flows, the next one has both).
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`document.querySelector('[data-panel="exporters"] tbody tr td:nth-child(5)').textContent === %q &&
			[...document.querySelectorAll('#view .kpi')].find(k => k.querySelector('.label').textContent === 'volume').querySelector('.value').textContent !== %q`,
			strconv.FormatUint(sent+more, 10), before),
			chromedp.WithPollingTimeout(25*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
		require.NoError(t, err, "the overview did not refresh the exporters and the traffic")
		var live int
		b.eval(t, `document.querySelectorAll('#view .kpi.live').length`, &live)
		require.Equal(t, 1, live, "the open minute's rate so far")
		require.Empty(t, b.takeProblems())
	})

	var firstApp string
	t.Run("top apps panel equals the API", func(t *testing.T) {
		b.setHash(t, "#/?"+rng) // the imported captures' minutes
		require.Empty(t, b.takeProblems())
		b.screenshot(t, shots, "overview.png")
		var window struct {
			From string `json:"from"`
			To   string `json:"to"`
		}
		b.eval(t, `(() => { const t = document.querySelector('[data-panel="app"] table.top'); return {from: t.dataset.from, to: t.dataset.to} })()`, &window)
		require.Equal(t, from.UTC().Format(time.RFC3339), window.From)
		var want apiTopAnswer
		getJSON(t, base+"/api/v1/top?"+url.Values{"by": {"app"}, "n": {"10"}, "from": {window.From}, "to": {window.To}}.Encode(), &want)
		require.GreaterOrEqual(t, len(want.Rows), 5, "the captures hold at least 5 applications")
		got := b.tableRows(t, `[data-panel="app"] table.top`)
		require.Len(t, got, len(want.Rows))
		for i, w := range want.Rows {
			g := got[i]
			require.Equal(t, w.Key, g.Key, "row %d", i)
			require.Len(t, g.Cells, 4, "row %d: rank, app, bps, share", i)
			require.Equal(t, strconv.Itoa(i+1), g.Cells[0])
			require.Equal(t, w.Label, g.Cells[1])
			near(t, w.Bps, parseShown(t, g.Cells[2]), "row %d (%s) bps %q", i, w.Key, g.Cells[2])
			near(t, w.Share, parseShown(t, g.Cells[3]), "row %d (%s) share %q", i, w.Key, g.Cells[3])
			if i > 0 {
				require.Less(t, w.Bytes, want.Rows[i-1].Bytes, "the captures' apps have no ties")
			}
		}
		firstApp = want.Rows[0].Key
		t.Logf("top apps as shown: %v", got)
	})

	t.Run("either-side shares say they add up to 200 %", func(t *testing.T) {
		b.setHash(t, "#/?"+rng) // the overview of the captures
		notes := evalJS[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#view [data-panel]')].map(p =>
			[p.dataset.panel, (p.querySelector('table.top caption') || {}).textContent || '']))`)
		require.Equal(t, "each flow counts at both ends: shares add up to 200 %", notes["port"], "the Ports panel (either side)")
		for _, one := range []string{"app", "srcip", "dstip", "proto"} {
			require.Empty(t, notes[one], "a flow counts once by %s", one)
		}
		b.setHash(t, "#/top?by=ip&"+rng)
		require.Contains(t, evalJS[string](t, b, `document.querySelector('#view table.top caption').textContent`), "shares add up to 200")
		b.setHash(t, "#/report?by=port&step=1h&"+rng)
		require.Contains(t, evalJS[string](t, b, `document.querySelector('#view table.report caption').textContent`), "shares add up to 200")
	})

	t.Run("the TopN table shows bytes and flows with the rates", func(t *testing.T) {
		b.setHash(t, "#/top?by=app&n=10&"+rng)
		heads := evalJS[[]string](t, b, `[...document.querySelectorAll('#view table.top thead th')].map(e => e.textContent)`)
		require.Equal(t, []string{"#", "app", "bps", "pps", "bytes", "flows", "share"}, heads)
		var table struct{ From, To string }
		b.eval(t, `(() => { const t = document.querySelector('#view table.top'); return {from: t.dataset.from, to: t.dataset.to} })()`, &table)
		var want apiTopAnswer
		getJSON(t, base+"/api/v1/top?"+url.Values{"by": {"app"}, "n": {"10"}, "from": {table.From}, "to": {table.To}}.Encode(), &want)
		got := b.tableRows(t, `#view table.top`)
		require.Len(t, got, len(want.Rows))
		for i, w := range want.Rows {
			require.Equal(t, w.Key, got[i].Key, "row %d", i)
			near(t, float64(w.Bytes), parseShown(t, got[i].Cells[4]), "row %s bytes %q", w.Key, got[i].Cells[4])
			near(t, float64(w.Flows), parseShown(t, got[i].Cells[5]), "row %s flows %q", w.Key, got[i].Cells[5])
			near(t, w.Share, parseShown(t, got[i].Cells[6]), "row %s share %q", w.Key, got[i].Cells[6])
		}
	})

	t.Run("the API menu links the OpenAPI description", func(t *testing.T) {
		b.do(t, chromedp.Click(chromedp.CSS(`header details.api-menu summary`)))
		var link struct {
			Href    string
			Visible bool
		}
		b.eval(t, `(() => { const a = document.querySelector('header .api-menu a[href="/api/v1/openapi.json"]');
			return a ? {href: a.getAttribute('href'), visible: a.offsetParent !== null} : {} })()`, &link)
		require.Equal(t, "/api/v1/openapi.json", link.Href)
		require.True(t, link.Visible, "the menu opened on a click")
		b.do(t, chromedp.Click(chromedp.CSS(`#view h1`))) // a click elsewhere closes it
		require.False(t, evalJS[bool](t, b, `document.querySelector('header details.api-menu').open`))
		require.Empty(t, b.takeProblems())
	})

	t.Run("a click on a row drills down and the URL changes", func(t *testing.T) {
		require.NotEmpty(t, firstApp)
		b.setHash(t, "#/?"+rng) // the overview of the captures
		var before, after string
		b.eval(t, `location.href`, &before)
		b.do(t, chromedp.Click(chromedp.CSS(`[data-panel="app"] table.top tbody tr:first-child`)))
		b.waitReady(t)
		b.eval(t, `location.href`, &after)
		require.NotEqual(t, before, after)
		u, err := url.Parse(after)
		require.NoError(t, err)
		q, err := url.ParseQuery(strings.TrimPrefix(u.Fragment, "/key?"))
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(u.Fragment, "/key?"), after)
		require.Equal(t, "app", q.Get("by"))
		require.Equal(t, firstApp, q.Get("key"))
		require.Equal(t, from.UTC().Format(time.RFC3339), q.Get("from"), "the range goes along")
		var charts int
		b.eval(t, `document.querySelectorAll('#view .uplot').length`, &charts)
		require.Equal(t, 2, charts, "bps and pps of the key")
		var volume string
		b.eval(t, `[...document.querySelectorAll('#view .kpi')].find(k => k.querySelector('.label').textContent === 'volume').querySelector('.value').textContent`, &volume)
		var want apiTopAnswer
		getJSON(t, base+"/api/v1/top?by=app&n=1&"+rng, &want)
		near(t, float64(want.Rows[0].Bytes), parseShown(t, volume), "volume %q", volume)
		b.screenshot(t, shots, "drilldown.png")

		// Back goes to the overview, as in any web page.
		evalJS[chromedp.Void](t, b, `history.back()`)
		b.waitReady(t)
		var view string
		b.eval(t, `document.getElementById('view').dataset.view`, &view)
		require.Equal(t, "overview", view)
	})

	t.Run("a protocol drills down into its apps and hosts", func(t *testing.T) {
		b.setHash(t, "#/key?by=proto&key=6&label=tcp&"+rng)
		var want apiTopAnswer
		getJSON(t, base+"/api/v1/top?by=app&n=10&proto=6&"+rng, &want)
		got := b.tableRows(t, `[data-panel="app"] table.top`)
		require.Len(t, got, len(want.Rows))
		for i, w := range want.Rows {
			require.Equal(t, w.Key, got[i].Key, "row %d", i)
		}
		b.screenshot(t, shots, "drilldown-proto.png")
	})

	t.Run("compare overlays an earlier period, with the API's deltas", func(t *testing.T) {
		// softflowd without -a exported the same trace minutes after the others:
		// a range starting just before its minutes, as long as the gap, has the
		// others' minutes as its previous period (compare=prev).
		lateFrom, _ := captureSpan(t, "../../testdata/pcaps/softflowd-v9-pcaptime.pcap")
		early, _ := captureSpan(t, "../../testdata/pcaps/softflowd-v9.pcap")
		offset := lateFrom.Sub(early)
		require.Greater(t, offset, 5*time.Minute, "the pcaptime capture comes after the others")
		cf := lateFrom.Add(-2 * time.Minute)
		ct := cf.Add(offset)
		q := url.Values{"by": {"app"}, "n": {"10"}, "from": {cf.UTC().Format(time.RFC3339)}, "to": {ct.UTC().Format(time.RFC3339)}, "compare": {"prev"}}
		b.setHash(t, "#/top?"+q.Encode())
		var legend []string
		b.eval(t, `[...document.querySelectorAll('#view .u-legend .u-series .u-label')].map(e => e.textContent)`, &legend)
		require.Contains(t, legend, "total, previous period")
		require.Contains(t, legend, "everything else")
		// The dashed overlay is the API's earlier total, point by point.
		var overlay []*float64
		var series struct {
			Step    string
			Compare struct{ Points []struct{ Bps float64 } }
		}
		var top struct {
			From, To string
			Compare  struct{ From string }
			Rows     []struct {
				Key   string
				Delta struct{ Total *float64 }
			}
		}
		getJSON(t, base+"/api/v1/top?"+q.Encode(), &top)
		require.NotEmpty(t, top.Rows)
		require.Equal(t, cf.Add(-offset).UTC().Format(time.RFC3339), top.Compare.From)
		b.eval(t, `document.querySelector('#view .chart').chartData.series.find(s => s.dash).values`, &overlay)
		step := evalJS[string](t, b, `document.querySelector('#view .chart').dataset.step`)
		getJSON(t, base+"/api/v1/series?"+url.Values{"by": {"app"}, "n": {"10"}, "from": {top.From}, "to": {top.To}, "step": {step}, "compare": {"prev"}}.Encode(), &series)
		require.Len(t, overlay, len(series.Compare.Points))
		nonZero := 0
		for i, p := range series.Compare.Points {
			require.NotNil(t, overlay[i], "point %d", i)
			require.InDelta(t, p.Bps, *overlay[i], 1e-6, "point %d", i)
			if p.Bps > 0 {
				nonZero++
			}
		}
		require.NotZero(t, nonZero, "the previous period has traffic")
		var heads []string
		b.eval(t, `[...document.querySelectorAll('#view table.top thead th')].map(e => e.textContent)`, &heads)
		require.Equal(t, "Δ", heads[len(heads)-1])
		// Each row's change is the API's delta for the same query.
		var shown []struct{ Key, Delta, Text string }
		b.eval(t, `[...document.querySelectorAll('#view table.top tbody tr')].map(tr => ({key: tr.dataset.key, delta: tr.lastChild.dataset.delta, text: tr.lastChild.textContent}))`, &shown)
		require.Len(t, shown, len(top.Rows))
		changed := 0
		for i, r := range top.Rows {
			require.Equal(t, r.Key, shown[i].Key)
			if r.Delta.Total == nil {
				require.Equal(t, "null", shown[i].Delta, "row %s", r.Key)
				require.Equal(t, "new", shown[i].Text, "row %s", r.Key)
				continue
			}
			changed++
			got, err := strconv.ParseFloat(shown[i].Delta, 64)
			require.NoError(t, err, "row %s: %q", r.Key, shown[i].Delta)
			require.Equal(t, *r.Delta.Total, got, "row %s", r.Key)
			require.InDelta(t, *r.Delta.Total/100, parseShown(t, strings.TrimPrefix(shown[i].Text, "+")), 0.006, "row %s: %q", r.Key, shown[i].Text)
		}
		require.NotZero(t, changed, "some app had traffic in both periods")
		b.screenshot(t, shots, "topn-compare.png")
	})

	// panelKeys are the keys a drill-down's breakdown panel lists.
	panelKeys := func(t *testing.T, b *browser, by string) []string {
		t.Helper()
		var keys []string
		for _, r := range b.tableRows(t, `[data-panel="`+by+`"] table.top`) {
			keys = append(keys, r.Key)
		}
		return keys
	}
	apiKeys := func(t *testing.T, base string, q url.Values) []string {
		t.Helper()
		var ans apiTopAnswer
		getJSON(t, base+"/api/v1/top?"+q.Encode(), &ans)
		keys := []string{}
		for _, r := range ans.Rows {
			keys = append(keys, r.Key)
		}
		return keys
	}
	rngQ := url.Values{"from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)}}
	with := func(q url.Values, kv ...string) url.Values {
		out := url.Values{}
		for k, v := range q {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}

	t.Run("with drill-downs off, the drill-down names the key that turns them on", func(t *testing.T) {
		require.NotEmpty(t, firstApp)
		b.setHash(t, "#/key?"+with(rngQ, "by", "app", "key", firstApp).Encode())
		var note string
		b.eval(t, `document.querySelector('#view [data-panel="off"]').textContent`, &note)
		require.Contains(t, note, "aggregate.drill_downs")
		require.Zero(t, evalJS[int](t, b, `document.querySelectorAll('#view .panel-error, #view [data-panel="srcip"]').length`))
		ifs := apiKeys(t, base, with(rngQ, "by", "in_if", "n", "1"))
		require.NotEmpty(t, ifs)
		b.setHash(t, "#/key?"+with(rngQ, "by", "in_if", "key", ifs[0]).Encode())
		b.eval(t, `document.querySelector('#view [data-panel="off"]').textContent`, &note)
		require.Contains(t, note, "aggregate.scope_interface")
		require.Empty(t, b.takeProblems(), "no console error, no failed request")
	})

	t.Run("with interface scopes off, the TopN pickers say which key turns them on", func(t *testing.T) {
		b.open(t, base+"/#/top?"+with(rngQ, "by", "app").Encode()) // a new document: the subtest runs alone too
		var hint string
		b.eval(t, `document.querySelector('#view .scope-off').innerText`, &hint)
		require.Contains(t, hint, "aggregate.scope_interface: true")
		require.True(t, evalJS[bool](t, b, `(() => { const q = (n) => document.querySelector('#view select[name='+n+']');
			return q('if').disabled && q('dir').disabled && q('if').offsetParent !== null && q('dir').offsetParent !== null })()`),
			"the pickers show, disabled")
		require.Empty(t, b.takeProblems(), "no console error, no failed request")
	})

	t.Run("with drill-downs on, apps, hosts and interfaces break down through their scopes", func(t *testing.T) {
		// The same captures, imported by a tmsd keeping the per-app, per-address
		// and per-interface tables.
		dd := t.TempDir()
		conf := filepath.Join(dd, "tmsd.yaml")
		require.NoError(t, os.WriteFile(conf, []byte("aggregate:\n  drill_downs: 100\n  scope_interface: true\n"), 0o644))
		require.NoError(t, run(append([]string{"import", "--config", conf, "--data", filepath.Join(dd, "data"), "--retention", "36500d"}, files...), io.Discard, io.Discard))
		pd := startDashboard(t, filepath.Join(dd, "data"), func(c *Config) {
			c.Aggregate.DrillDowns, c.Aggregate.ScopeInterface = 100, true
		})
		bd := "http://" + pd.api.Addr().String()
		tb := b.tab(t)

		apps := apiKeys(t, bd, with(rngQ, "by", "app", "n", "1"))
		require.NotEmpty(t, apps)
		tb.open(t, bd+"/#/key?"+with(rngQ, "by", "app", "key", apps[0]).Encode())
		for _, by := range []string{"srcip", "dstip", "port"} {
			want := apiKeys(t, bd, with(rngQ, "by", by, "app", apps[0], "n", "10"))
			require.NotEmpty(t, want, "app %s has %s", apps[0], by)
			require.Equal(t, want, panelKeys(t, tb, by), "the %s of app %s", by, apps[0])
		}
		tb.screenshot(t, shots, "drilldown-app.png")
		// A host of the app drills into its apps and peers, through ip=.
		host := panelKeys(t, tb, "srcip")[0]
		tb.do(t, chromedp.Click(chromedp.CSS(`[data-panel="srcip"] table.top tbody tr:first-child`)))
		tb.waitReady(t)
		route := evalJS[string](t, tb, `location.hash`)
		rq, err := url.ParseQuery(strings.TrimPrefix(route, "#/key?"))
		require.NoError(t, err)
		require.Equal(t, host, rq.Get("key"))
		require.Equal(t, apps[0], rq.Get("app"), "the host's traffic within the app")
		for _, by := range []string{"app", "peer"} {
			want := apiKeys(t, bd, with(rngQ, "by", by, "ip", host, "n", "10"))
			require.NotEmpty(t, want, "host %s has %s", host, by)
			require.Equal(t, want, panelKeys(t, tb, by), "the %s of host %s", by, host)
		}
		// An interface drills into if=…&dir=….
		ifs := apiKeys(t, bd, with(rngQ, "by", "out_if", "n", "1"))
		require.NotEmpty(t, ifs)
		tb.setHash(t, "#/key?"+with(rngQ, "by", "out_if", "key", ifs[0]).Encode())
		want := apiKeys(t, bd, with(rngQ, "by", "app", "if", ifs[0], "dir", "out", "n", "10"))
		require.NotEmpty(t, want)
		require.Equal(t, want, panelKeys(t, tb, "app"), "the apps leaving by %s", ifs[0])
		require.Zero(t, evalJS[int](t, tb, `document.querySelectorAll('#view .panel-error, #view [data-panel="off"]').length`))
		require.Empty(t, tb.takeProblems())

		t.Run("the TopN view scopes by a picked interface and direction", func(t *testing.T) {
			tb.setHash(t, "#/top?"+with(rngQ, "by", "app").Encode())
			require.Zero(t, evalJS[int](t, tb, `document.querySelectorAll('#view .scope-off:not([hidden])').length`), "no hint: the scope is on")
			// The picker lists every interface the flows of the range name, in or out.
			listed := map[string]bool{}
			for _, by := range []string{"in_if", "out_if"} {
				for _, k := range apiKeys(t, bd, with(rngQ, "by", by, "n", "1000")) {
					listed[k] = true
				}
			}
			var options []string
			tb.eval(t, `[...document.querySelectorAll('#view select[name=if] option')].map(o => o.value).filter(v => v)`, &options)
			require.ElementsMatch(t, slices.Collect(maps.Keys(listed)), options)
			pick := func(name, value string) {
				t.Helper()
				evalJS[chromedp.Void](t, tb, fmt.Sprintf(`(() => { const s = document.querySelector('#view select[name=%s]'); s.value = %q; s.dispatchEvent(new Event('change')) })()`, name, value))
			}
			// A direction alone is no scope (the API wants both): the URL waits for an interface.
			before := evalJS[string](t, tb, `location.hash`)
			pick("dir", "out")
			require.Equal(t, before, evalJS[string](t, tb, `location.hash`))
			evalJS[chromedp.Void](t, tb, `performance.clearResourceTimings()`) // the drill-down before asked the same
			pick("if", ifs[0])
			tb.waitReady(t)
			hq, err := url.ParseQuery(strings.TrimPrefix(evalJS[string](t, tb, `location.hash`), "#/top?"))
			require.NoError(t, err)
			require.Equal(t, ifs[0], hq.Get("if"))
			require.Equal(t, "out", hq.Get("dir"))
			var table struct{ From, To string }
			tb.eval(t, `(() => { const t = document.querySelector('#view table.top'); return {from: t.dataset.from, to: t.dataset.to} })()`, &table)
			var want apiTopAnswer
			getJSON(t, bd+"/api/v1/top?"+url.Values{"by": {"app"}, "n": {"10"}, "if": {ifs[0]}, "dir": {"out"}, "from": {table.From}, "to": {table.To}}.Encode(), &want)
			require.NotEmpty(t, want.Rows)
			got := tb.tableRows(t, `#view table.top`)
			require.Len(t, got, len(want.Rows))
			for i, w := range want.Rows {
				require.Equal(t, w.Key, got[i].Key, "row %d", i)
				near(t, w.Bps, parseShown(t, got[i].Cells[2]), "row %d (%s) bps %q", i, w.Key, got[i].Cells[2])
			}
			// The captures name one interface, so its table is also the whole
			// network's: that the page asked the scoped table shows in its requests.
			var asked []string
			tb.eval(t, `performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('/api/v1/top?'))`, &asked)
			scoped := false
			for _, a := range asked {
				u, err := url.Parse(a)
				require.NoError(t, err)
				aq := u.Query()
				scoped = scoped || aq.Get("by") == "app" && aq.Get("if") == ifs[0] && aq.Get("dir") == "out"
			}
			require.True(t, scoped, "the table comes from /top?by=app&if=%s&dir=out; asked %v", ifs[0], asked)
			// Then the other direction, the interface kept.
			pick("dir", "in")
			tb.waitReady(t)
			hq, err = url.ParseQuery(strings.TrimPrefix(evalJS[string](t, tb, `location.hash`), "#/top?"))
			require.NoError(t, err)
			require.Equal(t, ifs[0], hq.Get("if"))
			require.Equal(t, "in", hq.Get("dir"))
			wantIn := apiKeys(t, bd, with(rngQ, "by", "app", "n", "10", "if", ifs[0], "dir", "in"))
			gotIn := []string{}
			for _, r := range tb.tableRows(t, `#view table.top`) {
				if r.Key != "" { // not the "no traffic" row
					gotIn = append(gotIn, r.Key)
				}
			}
			require.Equal(t, wantIn, gotIn)
			require.Empty(t, tb.takeProblems())
		})
	})

	t.Run("interfaces", func(t *testing.T) {
		b.setHash(t, "#/interfaces?"+rng)
		// Every interface the flows name, with in and out bps as the API counts them.
		want := map[string][2]float64{}
		for i, by := range []string{"in_if", "out_if"} {
			var ans apiTopAnswer
			getJSON(t, base+"/api/v1/top?by="+by+"&n=1000&"+rng, &ans)
			for _, r := range ans.Rows {
				v := want[r.Key]
				v[i] = r.Bps
				want[r.Key] = v
			}
		}
		require.NotEmpty(t, want)
		// And every interface of the sFlow counter samples (the live replay's), with its speed.
		var exp struct {
			Exporters []struct {
				Address    string
				Interfaces []struct {
					IfIndex uint32
					Speed   uint64
				}
			}
		}
		getJSON(t, base+"/api/v1/exporters", &exp)
		speeds := map[string]uint64{}
		for _, e := range exp.Exporters {
			for _, c := range e.Interfaces {
				k := fmt.Sprintf("%s:%d", e.Address, c.IfIndex)
				speeds[k] = c.Speed
				want[k] = want[k]
			}
		}
		require.NotEmpty(t, speeds, "pmacct's sFlow capture has counter samples")
		// pmacct sends its counters under ifIndex 0x3fffffff ("unknown", with a
		// made-up 100 Mbps), its flows under the same unknown interface: 0.
		require.Contains(t, speeds, "127.0.0.1:0", "pmacct's counter samples are the unknown interface's")
		for k := range want {
			require.False(t, strings.HasSuffix(k, ":1073741823"), "interface %s", k)
		}
		require.Equal(t, []string{"ifIndex", "name", "in bps", "out bps", "speed", "in util", "out util", "status"},
			evalJS[[]string](t, b, `[...document.querySelector('#view table.ifaces').tHead.rows[0].cells].map(c => c.textContent)`))
		got := b.tableRows(t, `#view table.ifaces`)
		require.Len(t, got, len(want))
		unknown := 0
		for _, g := range got {
			w, ok := want[g.Key]
			require.True(t, ok, "interface %s is not in the API's answer", g.Key)
			// ifIndex, name, in bps, out bps, speed, in util, out util, status
			near(t, w[0], parseShown(t, g.Cells[2]), "%s in bps %q", g.Key, g.Cells[2])
			near(t, w[1], parseShown(t, g.Cells[3]), "%s out bps %q", g.Key, g.Cells[3])
			if strings.HasSuffix(g.Key, ":0") {
				unknown++
				if g.Cells[1] == "" {
					require.Equal(t, "unknown", g.Cells[0], "%s: no interface number", g.Key)
				} else {
					require.Equal(t, "0", g.Cells[0], "%s: ifIndex 0, named %q", g.Key, g.Cells[1])
				}
				require.Equal(t, []string{"—", "—", "—"}, g.Cells[4:7], "%s: no speed, no utilization", g.Key)
				continue
			}
			require.True(t, strings.HasSuffix(g.Key, ":"+g.Cells[0]), "ifIndex cell %q of %s", g.Cells[0], g.Key)
			if sp, ok := speeds[g.Key]; ok && sp > 0 {
				near(t, float64(sp), parseShown(t, g.Cells[4]), "%s speed %q", g.Key, g.Cells[4])
				require.Contains(t, g.Cells[5], "%", "%s: utilization against ifSpeed", g.Key)
			}
		}
		require.NotZero(t, unknown, "the captures' flows carry the unknown interface")
		b.screenshot(t, shots, "interfaces.png")
		// The TopN by interface names it too, as the API labels it.
		b.setHash(t, "#/top?by=in_if&"+rng)
		cell := evalJS[string](t, b, `document.querySelector('#view table.top tbody tr[data-key="127.0.0.1:0"] td.key').textContent`)
		require.Equal(t, "127.0.0.1 unknown interface", cell)
	})

	t.Run("the capacity report equals the API, and so does its CSV", func(t *testing.T) {
		// The report takes whole steps only: the captures' span widened to 5 minutes.
		rf, rt := from.Truncate(5*time.Minute), to.Add(5*time.Minute-time.Nanosecond).Truncate(5*time.Minute)
		q := url.Values{"by": {"app"}, "n": {"10"}, "step": {"5m"}, "from": {rf.UTC().Format(time.RFC3339)}, "to": {rt.UTC().Format(time.RFC3339)}, "compare": {"prev"}}
		b.open(t, base+"/#/report?"+q.Encode()) // a new document: the subtest runs alone too
		var want struct {
			From, To string
			Rows     []struct {
				Key      string
				Bps      float64
				P95Bps   float64 `json:"p95_bps"`
				PeakBps  float64 `json:"peak_bps"`
				PeakTime string  `json:"peak_time"`
				Bytes    uint64
				Delta    *struct {
					AvgBps *float64 `json:"avg_bps"`
				}
			}
		}
		getJSON(t, base+"/api/v1/report?"+q.Encode(), &want)
		require.NotEmpty(t, want.Rows, "the captures have apps in this range")
		var table struct{ From, To string }
		b.eval(t, `(() => { const t = document.querySelector('#view table.report'); return {from: t.dataset.from, to: t.dataset.to} })()`, &table)
		require.Equal(t, want.From, table.From)
		require.Equal(t, want.To, table.To)
		got := b.tableRows(t, `table.report`)
		require.Len(t, got, len(want.Rows))
		for i, r := range want.Rows {
			require.Equal(t, r.Key, got[i].Key, "row %d", i)
			// #, key, average, peak, peak at, p95, total, share, Δ avg, Δ peak, Δ p95
			require.Len(t, got[i].Cells, 11)
			near(t, r.Bps, parseShown(t, got[i].Cells[2]), "row %s average", r.Key)
			near(t, r.PeakBps, parseShown(t, got[i].Cells[3]), "row %s peak", r.Key)
			near(t, r.P95Bps, parseShown(t, got[i].Cells[5]), "row %s p95", r.Key)
			near(t, float64(r.Bytes), parseShown(t, got[i].Cells[6]), "row %s total", r.Key)
			pt, err := time.Parse(time.RFC3339, r.PeakTime)
			require.NoError(t, err)
			require.Equal(t, pt.Local().Format("2006-01-02 15:04"), got[i].Cells[4], "row %s peak time in the browser's zone", r.Key)
			require.NotNil(t, r.Delta, "row %s: compare=prev gives a change", r.Key)
			if r.Delta.AvgBps == nil {
				require.Equal(t, "new", got[i].Cells[8], "row %s: nothing before", r.Key)
			} else {
				require.InDelta(t, *r.Delta.AvgBps/100, parseShown(t, strings.TrimPrefix(got[i].Cells[8], "+")), 0.011, "row %s: Δ avg %q", r.Key, got[i].Cells[8])
			}
		}

		resp, err := http.Get(base + "/api/v1/report?" + q.Encode() + "&format=csv")
		require.NoError(t, err)
		apiCSV, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(apiCSV))
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		pageCSV, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#view a.download').fetchCSV()`, chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		require.Equal(t, string(apiCSV), pageCSV, "the downloaded CSV is the API's, byte for byte")
		require.Greater(t, strings.Count(pageCSV, "\r\n"), len(want.Rows), "a header and a line per row")
		// Without a token the link itself is the download, to the same report.
		var link string
		b.eval(t, `document.querySelector('#view a.download').href`, &link)
		lu, err := url.Parse(link)
		require.NoError(t, err)
		require.Equal(t, "/api/v1/report", lu.Path)
		lq := lu.Query()
		require.Equal(t, "csv", lq.Get("format"))
		require.Equal(t, "bytes", lq.Get("metric"), "the default metric, said")
		lq.Del("format")
		lq.Del("metric")
		require.Equal(t, q, lq)
		b.screenshot(t, shots, "report.png")
	})

	t.Run("the report ranks by the metric chosen, and so does its CSV", func(t *testing.T) {
		rf, rt := from.Truncate(5*time.Minute), to.Add(5*time.Minute-time.Nanosecond).Truncate(5*time.Minute)
		q := url.Values{"by": {"srcip"}, "n": {"10"}, "step": {"5m"}, "from": {rf.UTC().Format(time.RFC3339)}, "to": {rt.UTC().Format(time.RFC3339)}}
		b.open(t, base+"/#/report?"+q.Encode())
		type reportAnswer struct {
			Metric string
			Rows   []struct {
				Key     string
				Share   float64
				Packets uint64
			}
		}
		keys := func(r reportAnswer) []string {
			var out []string
			for _, row := range r.Rows {
				out = append(out, row.Key)
			}
			return out
		}
		var byBytes, byPackets reportAnswer
		getJSON(t, base+"/api/v1/report?"+q.Encode(), &byBytes)
		getJSON(t, base+"/api/v1/report?"+with(q, "metric", "packets").Encode(), &byPackets)
		require.NotEqual(t, keys(byBytes), keys(byPackets), "the captures' hosts rank differently by bytes and by packets")
		shownKeys := func() []string {
			var out []string
			for _, r := range b.tableRows(t, `table.report`) {
				out = append(out, r.Key)
			}
			return out
		}
		require.Equal(t, keys(byBytes), shownKeys())

		// Choosing packets, as a person does: the menu.
		evalJS[chromedp.Void](t, b, `(() => { const s = document.querySelector('#view select[name=metric]'); s.value = 'packets'; s.dispatchEvent(new Event('change')) })()`)
		b.waitReady(t)
		hq, err := url.ParseQuery(strings.TrimPrefix(evalJS[string](t, b, `location.hash`), "#/report?"))
		require.NoError(t, err)
		require.Equal(t, "packets", hq.Get("metric"), "the choice is in the URL")
		require.Equal(t, keys(byPackets), shownKeys())
		got := b.tableRows(t, `table.report`)
		for i, r := range byPackets.Rows {
			near(t, float64(r.Packets), parseShown(t, got[i].Cells[6]), "row %s packets %q", r.Key, got[i].Cells[6])
			near(t, r.Share, parseShown(t, got[i].Cells[7]), "row %s share of packets %q", r.Key, got[i].Cells[7])
		}
		var link string
		b.eval(t, `document.querySelector('#view a.download').href`, &link)
		lu, err := url.Parse(link)
		require.NoError(t, err)
		require.Equal(t, "packets", lu.Query().Get("metric"), "the CSV link follows the choice")
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		pageCSV, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#view a.download').fetchCSV()`, chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		resp, err := http.Get(base + "/api/v1/report?" + with(q, "metric", "packets", "format", "csv").Encode())
		require.NoError(t, err)
		apiCSV, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, string(apiCSV), pageCSV)
	})

	t.Run("the report's date fields show the range reported, widened to whole steps", func(t *testing.T) {
		// Edges inside steps: the report covers the steps holding them.
		af, at := from.Truncate(5*time.Minute).Add(2*time.Minute), to.Truncate(5*time.Minute).Add(-2*time.Minute)
		q := url.Values{"by": {"app"}, "step": {"5m"}, "from": {af.UTC().Format(time.RFC3339)}, "to": {at.UTC().Format(time.RFC3339)}}
		b.open(t, base+"/#/report?"+q.Encode())
		var shown struct{ TableFrom, TableTo, FieldFrom, FieldTo, Open string }
		b.eval(t, `(() => { const t = document.querySelector('#view table.report'); const f = (n) => document.querySelector('#view .range input[name='+n+']').value;
			return {tableFrom: t.dataset.from, tableTo: t.dataset.to, fieldFrom: f('from'), fieldTo: f('to'), open: document.querySelector('#view .note').dataset.openStep} })()`, &shown)
		wf, wt := af.Truncate(5*time.Minute), at.Add(5*time.Minute-time.Second).Truncate(5*time.Minute)
		require.Equal(t, wf.UTC().Format(time.RFC3339), shown.TableFrom, "from widened to its step")
		require.Equal(t, wt.UTC().Format(time.RFC3339), shown.TableTo, "to widened to the end of its step")
		require.Equal(t, wf.Local().Format("2006-01-02T15:04"), shown.FieldFrom, "the field shows the answer's from")
		require.Equal(t, wt.Local().Format("2006-01-02T15:04"), shown.FieldTo, "the field shows the answer's to")
		require.Empty(t, shown.Open, "a range in the past has no open step")

		// Up to now: the step holding now is reported, marked as open (partial).
		b.open(t, base+"/#/report?by=app&from=-2h")
		b.eval(t, `(() => { const t = document.querySelector('#view table.report'); const f = (n) => document.querySelector('#view .range input[name='+n+']').value;
			return {tableFrom: t.dataset.from, tableTo: t.dataset.to, fieldFrom: f('from'), fieldTo: f('to'), open: document.querySelector('#view .note').dataset.openStep} })()`, &shown)
		end, err := time.Parse(time.RFC3339, shown.TableTo)
		require.NoError(t, err)
		require.True(t, end.After(time.Now().Add(-time.Second)), "the report ends after now (%s): the open step is in", end)
		require.Equal(t, end.Add(-5*time.Minute).UTC().Format(time.RFC3339), shown.Open)
		require.Equal(t, end.Local().Format("2006-01-02T15:04"), shown.FieldTo)
		require.Contains(t, evalJS[string](t, b, `document.querySelector('#view .note').textContent`), "is still open: its figures are partial")
		require.Empty(t, b.takeProblems())
	})

	t.Run("an exporter that sends only junk is marked failing, not ok", func(t *testing.T) {
		pj := startDashboard(t, t.TempDir(), nil)
		bj := "http://" + pj.api.Addr().String()
		conn, err := net.Dial("udp", pj.netflowAddrs()[0])
		require.NoError(t, err)
		defer conn.Close()
		random := rand.New(rand.NewPCG(3, 4))
		const junk = 40
		for i := range junk {
			d := make([]byte, 20+random.IntN(300))
			for j := range d {
				d[j] = byte(random.Uint32())
			}
			d[0], d[1] = 0, byte(9+i%2) // v9 or IPFIX (10), past the version check
			_, err := conn.Write(d)
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool {
			e := pj.decoder.Exporters()
			return len(e) == 1 && e[0].Datagrams == junk
		}, 30*time.Second, 10*time.Millisecond, "datagrams received")
		require.Zero(t, pj.decoder.Exporters()[0].Flows, "junk decodes into no flow")
		tb := b.tab(t)
		state := func() (s struct{ State, Status, Dot, Legend string }) {
			tb.eval(t, `(() => { const tr = document.querySelector('[data-panel="exporters"] tbody tr');
				return {state: tr.dataset.state, status: tr.lastChild.textContent, dot: tr.querySelector('.dot').title,
					legend: document.querySelector('[data-panel="exporters"] .legend').textContent} })()`, &s)
			return s
		}
		tb.open(t, bj+"/")
		got := state()
		require.Equal(t, "failing", got.State)
		require.Equal(t, "only errors", got.Status, "said in words, not only by the dot's colour")
		require.Contains(t, got.Dot, "none decoded into a flow")
		for _, word := range []string{"ok", "errors", "only errors", "no flows", "silent"} {
			require.Contains(t, got.Legend, word+":", "the legend explains %q", word)
		}
		// Real datagrams after the junk: flows, with errors alongside.
		sent := replayPcap(t, pj.netflowAddrs()[0], "../../testdata/pcaps/softflowd-v9.pcap")
		require.Eventually(t, func() bool { return pj.decoder.Exporters()[0].Datagrams == junk+sent }, 30*time.Second, 10*time.Millisecond)
		tb.open(t, bj+"/")
		got = state()
		require.Equal(t, "errors", got.State)
		require.Equal(t, "errors", got.Status)
		tb.takeProblems()
	})

	t.Run("a store imported from a capture says where its data is, and goes there", func(t *testing.T) {
		// A store holding only the captures' minutes (days ago), nothing live:
		// every view opens on a range without traffic.
		dd := t.TempDir()
		require.NoError(t, run(append([]string{"import", "--data", dd, "--retention", "36500d"}, files...), io.Discard, io.Discard))
		pi := startDashboard(t, dd, nil)
		bi := "http://" + pi.api.Addr().String()
		var data struct{ From, To string }
		getJSON(t, bi+"/api/v1/data", &data)
		df, err := time.Parse(time.RFC3339, data.From)
		require.NoError(t, err)
		dt, err := time.Parse(time.RFC3339, data.To)
		require.NoError(t, err)
		require.False(t, df.Before(from) || dt.After(to), "the data %s – %s is the captures' (%s – %s)", df, dt, from, to)
		tb := b.tab(t)
		views := []struct {
			hash, traffic string // traffic: a JS expression true once the view shows some
		}{
			{"#/", `[...document.querySelectorAll('#view [data-panel="app"] table.top tbody tr[data-key]')].length > 0`},
			{"#/top?by=app", `document.querySelectorAll('#view table.top tbody tr[data-key]').length > 0`},
			{"#/key?by=app&key=https", `!document.querySelector('#view .chart').classList.contains('chart-empty')`},
			{"#/interfaces", `document.querySelectorAll('#view table.ifaces tbody tr').length > 0`},
			{"#/report?by=app", `document.querySelectorAll('#view table.report tbody tr[data-key]').length > 0`},
		}
		for _, v := range views {
			tb.open(t, bi+"/"+v.hash)
			var note struct{ State, From, To, Text, JumpFrom, JumpTo string }
			tb.eval(t, `(() => { const n = document.querySelector('#view .where-data'); const j = n.querySelector('button.jump') || {dataset: {}};
				return {state: n.dataset.state || '', from: n.dataset.from || '', to: n.dataset.to || '', text: n.textContent,
					jumpFrom: j.dataset.from || '', jumpTo: j.dataset.to || ''} })()`, &note)
			require.Equal(t, "elsewhere", note.State, "%s: the view says where the data is", v.hash)
			require.Equal(t, data.From, note.From, v.hash)
			require.Equal(t, data.To, note.To, v.hash)
			require.Contains(t, note.Text, "No traffic in this range", v.hash)
			require.Contains(t, note.Text, df.Local().Format("2006-01-02 15:04"), "%s: the data's first minute, in the browser's zone", v.hash)
			require.Contains(t, note.Text, dt.Local().Format("2006-01-02 15:04"), "%s: the data's end", v.hash)
			require.False(t, evalJS[bool](t, tb, v.traffic), "%s: nothing shown before the jump", v.hash)
			// One click: the view on a range holding the data.
			tb.do(t, chromedp.Click(chromedp.CSS(`#view .where-data button.jump`)))
			tb.waitReady(t)
			hash := evalJS[string](t, tb, `location.hash`)
			_, query, _ := strings.Cut(hash, "?")
			hq, err := url.ParseQuery(query)
			require.NoError(t, err, hash)
			require.Equal(t, note.JumpFrom, hq.Get("from"), hash)
			require.Equal(t, note.JumpTo, hq.Get("to"), hash)
			jf, err := time.Parse(time.RFC3339, note.JumpFrom)
			require.NoError(t, err)
			jt, err := time.Parse(time.RFC3339, note.JumpTo)
			require.NoError(t, err)
			require.True(t, jf.Before(dt) && jt.After(df), "%s: the jump %s – %s holds data", hash, jf, jt)
			require.True(t, evalJS[bool](t, tb, v.traffic), "%s: the view shows the traffic", hash)
			require.True(t, evalJS[bool](t, tb, `document.querySelector('#view .where-data').hidden`), "%s: no note on a range with traffic", hash)
		}
		require.Empty(t, tb.takeProblems())

		// An empty store says so, with no jump.
		pe := startDashboard(t, t.TempDir(), nil)
		tb.open(t, "http://"+pe.api.Addr().String()+"/#/top?by=app")
		require.Equal(t, "none", evalJS[string](t, tb, `document.querySelector('#view .where-data').dataset.state`))
		require.Zero(t, evalJS[int](t, tb, `document.querySelectorAll('#view .where-data button').length`))
	})

	require.Empty(t, b.takeProblems(), "console errors, exceptions or failed loads")

	t.Run("an API error shows as a banner", func(t *testing.T) {
		b.setHash(t, "#/top?by=nosuch&"+rng)
		var banner string
		b.eval(t, `(() => { const b = document.getElementById('banner'); return b.hidden ? '' : b.textContent })()`, &banner)
		require.Contains(t, banner, "“by”")
		require.Contains(t, banner, "unknown dimension")
		var inPlace string
		b.eval(t, `document.querySelector('#view .panel-error').textContent`, &inPlace)
		require.Contains(t, inPlace, "unknown dimension", "the table's place shows the error, not a blank")
		b.takeProblems() // the browser logs the 400 itself
	})

	t.Run("times in the browser's zone, UTC on hover", func(t *testing.T) {
		tb := b.tab(t)
		// Half an hour off any whole-hour zone: a local time cannot pass for UTC.
		tb.do(t, chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
			_, err := cdp.Call(ctx, tgt, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Kolkata"})
			return err
		}))
		tb.open(t, base+"/#/?"+rng)
		box := evalJS[[]float64](t, tb, `(() => { const r = document.querySelector('#view .u-over').getBoundingClientRect(); return [r.left, r.top, r.width, r.height] })()`)
		tb.do(t, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, box[0]+box[2]/2, box[1]+box[3]/2))
		ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
		defer cancel()
		shown, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => { const v = document.querySelector('#view .u-legend .u-series .u-value').textContent; return v.includes('UTC') && v })()`,
			chromedp.WithPollingTimeout(5*time.Second)))
		require.NoError(t, err, "the legend shows the hovered time")
		m := regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d) \((\d\d:\d\d) UTC\)$`).FindStringSubmatch(shown)
		require.NotNil(t, m, "legend time %q", shown)
		kolkata := time.FixedZone("IST", 5*3600+1800)
		local, err := time.ParseInLocation("2006-01-02 15:04", m[1], kolkata)
		require.NoError(t, err)
		require.Equal(t, m[2], local.UTC().Format("15:04"), "local %s and UTC %s are the same instant", m[1], m[2])
		require.False(t, local.Before(from) || local.After(to), "the hovered time %s is in the range", local.UTC())
	})

	t.Run("a token is asked for, kept, and sent", func(t *testing.T) {
		const token = "tmsd_browser_test_token"
		pt := startDashboard(t, t.TempDir(), func(c *Config) {
			c.API.ReadTokens = []TokenHash{{api.HashToken(token)}}
		})
		tb := b.tab(t)
		tb.open(t, "http://"+pt.api.Addr().String()+"/")
		var state struct {
			Banner string `json:"banner"`
			Dialog bool   `json:"dialog"`
		}
		tb.eval(t, `({banner: document.getElementById('banner').textContent, dialog: document.getElementById('token-dialog').open})`, &state)
		require.Contains(t, state.Banner, "401")
		require.True(t, state.Dialog, "the token box opens on 401")
		tb.do(t, chromedp.SendKeys(chromedp.CSS(`#token-dialog input`), token),
			chromedp.Click(chromedp.CSS(`#token-dialog button[value=save]`)))
		tb.waitReady(t)
		tb.eval(t, `({banner: document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent, dialog: document.getElementById('token-dialog').open})`, &state)
		require.Empty(t, state.Banner)
		require.False(t, state.Dialog)
		var stored string
		tb.eval(t, `localStorage.getItem('tmsd.token')`, &stored)
		require.Equal(t, token, stored)
		var errs int
		tb.eval(t, `document.querySelectorAll('#view .panel-error').length`, &errs)
		require.Zero(t, errs)
		// The report's CSV cannot be a plain link then: its fetch carries the token.
		tb.setHash(t, "#/report?by=app")
		ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
		defer cancel()
		csv, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#view a.download').fetchCSV()`, chromedp.EvalAwaitPromise))
		require.NoError(t, err, "the CSV fetch is authorized")
		require.True(t, strings.HasPrefix(csv, "row,key,label,from,to,"), "a CSV answer: %q", csv)
	})

	t.Run("first paint on 14 days of minutes", func(t *testing.T) {
		p14 := startDashboard(t, t.TempDir(), nil)
		t0 := time.Now()
		seedDays(t, p14.store, 14, time.Now())
		t.Logf("seeded 14 days (%d minutes) through the store in %s", 14*1440, time.Since(t0).Round(time.Millisecond))
		tb := b.tab(t)
		tb.open(t, base14(p14)+"/?fresh#/")
		var timing struct {
			FCP   float64 `json:"fcp"`
			Ready float64 `json:"ready"`
		}
		tb.eval(t, `({fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || -1,
			ready: (performance.getEntriesByName('tmsd:overview:ready')[0] || {}).startTime || -1})`, &timing)
		// Logged, not asserted: a busy machine says nothing about the dashboard.
		t.Logf("overview on 14 days of minute data: first contentful paint %.0f ms, charts and panels filled %.0f ms after navigation start", timing.FCP, timing.Ready)
		require.Empty(t, tb.takeProblems())

		// Here a row has an error bound: the TopN table shows the column, and the API's figure.
		tb.setHash(t, "#/top?by=app&n=10&from=-3h")
		var window struct {
			From string `json:"from"`
			To   string `json:"to"`
		}
		tb.eval(t, `(() => { const t = document.querySelector('#view table.top'); return {from: t.dataset.from, to: t.dataset.to} })()`, &window)
		var want struct {
			Rows []struct {
				Key   string
				Error uint64
			}
		}
		getJSON(t, base14(p14)+"/api/v1/top?"+url.Values{"by": {"app"}, "n": {"10"}, "from": {window.From}, "to": {window.To}}.Encode(), &want)
		heads := evalJS[[]string](t, tb, `[...document.querySelectorAll('#view table.top thead th')].map(e => e.textContent)`)
		require.Equal(t, "error ±", heads[len(heads)-1])
		got := tb.tableRows(t, `#view table.top`)
		require.Len(t, got, len(want.Rows))
		withError := 0
		for i, w := range want.Rows {
			require.Equal(t, w.Key, got[i].Key)
			cell := got[i].Cells[len(got[i].Cells)-1]
			if w.Error == 0 {
				require.Empty(t, cell, "row %s is exact", w.Key)
				continue
			}
			withError++
			near(t, float64(w.Error), parseShown(t, cell), "row %s error %q", w.Key, cell)
		}
		require.Equal(t, 1, withError, "the key that drops out")
	})
	t.Logf("browser tests took %s", time.Since(start).Round(time.Millisecond))
}

// publicCapture is softflowd's v9 export of the trace of public addresses
// (KR, US, JP, ... and private, cgnat, documentation ones).
const publicCapture = "../../testdata/pcaps/softflowd-v9-public.pcap"

// TestDashboardEnrichment: countries, ASes, exporter and interface names as
// the dashboard shows them, on a store of the public capture.
func TestDashboardEnrichment(t *testing.T) {
	b := newBrowser(t) // first: skips at once when there is no chromium
	imported := func(t *testing.T) string {
		t.Helper()
		data := t.TempDir()
		require.NoError(t, run([]string{"import", "--data", data, "--retention", "36500d", publicCapture}, io.Discard, io.Discard))
		return data
	}
	first, last := captureSpan(t, publicCapture)
	rngQ := url.Values{"from": {first.Add(-5 * time.Minute).UTC().Format(time.RFC3339)}, "to": {last.Add(5 * time.Minute).UTC().Format(time.RFC3339)}}
	rng := rngQ.Encode()
	with := func(kv ...string) url.Values {
		out := url.Values{}
		for k, v := range rngQ {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	lo := netip.MustParseAddr("127.0.0.1")
	// live sends softflowd's main capture to p: the exporter 127.0.0.1 is then
	// known to the decoder, with the name its options data give ifIndex 0.
	// (Its flows' minutes are days before the public capture's.)
	live := func(t *testing.T, p *pipeline) {
		t.Helper()
		sent := replayPcap(t, p.netflowAddrs()[0], "../../testdata/pcaps/softflowd-v9.pcap")
		waitDecoded(t, p, sent)
	}
	p := startDashboard(t, imported(t), func(c *Config) { c.Exporters = ExporterNames{lo: "lab-softflowd"} })
	base := "http://" + p.api.Addr().String()
	live(t, p)
	top := func(t *testing.T, base string, q url.Values) apiTopAnswer {
		t.Helper()
		var ans apiTopAnswer
		getJSON(t, base+"/api/v1/top?"+q.Encode(), &ans)
		return ans
	}
	labels := func(rows []shownRow) []string {
		out := []string{}
		for _, r := range rows {
			out = append(out, r.Cells[1])
		}
		return out
	}

	t.Run("the overview shows the destination countries and ASes", func(t *testing.T) {
		b.open(t, base+"/#/?"+rng)
		for _, panel := range []struct{ by, title string }{{"dstcountry", "Destination countries"}, {"dstas", "Destination ASes"}} {
			sel := `[data-panel="` + panel.by + `"]`
			require.Equal(t, panel.title, evalJS[string](t, b, `document.querySelector('`+sel+` h2').textContent`))
			want := top(t, base, with("by", panel.by, "n", "10"))
			require.NotEmpty(t, want.Rows)
			got := b.tableRows(t, sel+` table.top`)
			require.Len(t, got, len(want.Rows), panel.by)
			for i, w := range want.Rows {
				require.Equal(t, w.Key, got[i].Key, "%s row %d", panel.by, i)
				require.Equal(t, w.Label, got[i].Cells[1], "%s row %d: the API's label", panel.by, i)
				// 3 significant digits, or 0.01 % below 10 %.
				require.InDelta(t, w.Share, parseShown(t, got[i].Cells[3]), max(w.Share*0.006, 0.00006), "%s row %s share %q", panel.by, w.Key, got[i].Cells[3])
			}
			// A bar per row, as long as its share.
			widths := evalJS[[]string](t, b, `[...document.querySelectorAll('`+sel+` tbody td.share .bar')].map(e => e.style.width)`)
			require.Len(t, widths, len(want.Rows))
			require.Equal(t, fmt.Sprintf("%.1f%%", want.Rows[0].Share*100), widths[0])
		}
		countries := labels(b.tableRows(t, `[data-panel="dstcountry"] table.top`))
		require.Contains(t, countries, "South Korea")
		require.Contains(t, countries, "private")
		require.Contains(t, labels(b.tableRows(t, `[data-panel="dstas"] table.top`)), "AS4766 Korea Telecom")
		require.Contains(t, evalJS[string](t, b, `document.querySelector('[data-panel="dstcountry"] tr[data-key="private"] td.key').title`), "192.168/16",
			"a range word says what it is on hover")
		// The exporters table names the exporter.
		require.Equal(t, "lab-softflowd (127.0.0.1)", evalJS[string](t, b, `document.querySelector('[data-panel="exporters"] tbody tr td').textContent`))
		require.Empty(t, b.takeProblems())
	})

	t.Run("a country drills down by its code, named", func(t *testing.T) {
		b.setHash(t, "#/?"+rng)
		b.do(t, chromedp.Click(chromedp.CSS(`[data-panel="dstcountry"] tr[data-key="KR"]`)))
		b.waitReady(t)
		hq, err := url.ParseQuery(strings.TrimPrefix(evalJS[string](t, b, `location.hash`), "#/key?"))
		require.NoError(t, err)
		require.Equal(t, "dstcountry", hq.Get("by"))
		require.Equal(t, "KR", hq.Get("key"))
		require.Equal(t, "destination country South Korea", evalJS[string](t, b, `document.querySelector('#view h1').textContent`))
		want := top(t, base, with("by", "dstcountry", "n", "20"))
		var kr uint64
		for _, r := range want.Rows {
			if r.Key == "KR" {
				kr = r.Bytes
			}
		}
		require.NotZero(t, kr)
		volume := evalJS[string](t, b, `[...document.querySelectorAll('#view .kpi')].find(k => k.querySelector('.label').textContent === 'volume').querySelector('.value').textContent`)
		near(t, float64(kr), parseShown(t, volume), "volume %q", volume)
		require.Contains(t, evalJS[string](t, b, `document.querySelector('#view [data-panel="off"]').textContent`), "no tables per destination country")
		require.Empty(t, b.takeProblems())
	})

	t.Run("the TopN view ranks by destination AS, with the AS names", func(t *testing.T) {
		b.setHash(t, "#/top?"+with("by", "dstas", "n", "20").Encode())
		require.Equal(t, "Top 20 by destination AS", evalJS[string](t, b, `document.querySelector('#view h1').textContent`))
		want := top(t, base, with("by", "dstas", "n", "20"))
		got := b.tableRows(t, `#view table.top`)
		require.Len(t, got, len(want.Rows))
		for i, w := range want.Rows {
			require.Equal(t, w.Key, got[i].Key, "row %d", i)
			require.Equal(t, w.Label, got[i].Cells[1], "row %d", i)
		}
		require.Equal(t, "AS4766 Korea Telecom", evalJS[string](t, b, `document.querySelector('#view table.top tr[data-key="4766"] td.key').textContent`))
		dims := evalJS[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#view select[name=by] option')].map(o => [o.value, o.textContent]))`)
		for by, name := range map[string]string{"srccountry": "source country", "dstcountry": "destination country", "country": "country (either side)",
			"srcas": "source AS", "dstas": "destination AS", "as": "AS (either side)"} {
			require.Equal(t, name, dims[by], "the dimension menu offers %s", by)
		}
		// The exporter picker names the exporter; its value stays the address.
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`[...document.querySelectorAll('#view select[name=exporter] option')].some(o => o.value === '127.0.0.1' && o.textContent === 'lab-softflowd (127.0.0.1)')`,
			chromedp.WithPollingTimeout(25*time.Second)))
		require.NoError(t, err, "the exporter picker lists lab-softflowd (127.0.0.1)")
		// Either side: each flow counts under both ends' countries.
		b.setHash(t, "#/top?"+with("by", "country").Encode())
		require.Contains(t, evalJS[string](t, b, `document.querySelector('#view table.top caption').textContent`), "shares add up to 200")
		require.Empty(t, b.takeProblems())
	})

	t.Run("the Interfaces page names the interfaces", func(t *testing.T) {
		b.setHash(t, "#/interfaces?"+rng)
		require.Equal(t, "exporter lab-softflowd (127.0.0.1)", evalJS[string](t, b, `document.querySelector('#view section[data-exporter="127.0.0.1"] h2').textContent`))
		var cell struct{ Index, Name, Title, Speed string }
		b.eval(t, `(() => { const tr = document.querySelector('#view table.ifaces tr[data-key="127.0.0.1:0"]');
			return {index: tr.cells[0].textContent, name: tr.cells[1].textContent, title: tr.cells[1].title, speed: tr.cells[4].textContent} })()`, &cell)
		require.Equal(t, "/work/main/testd", cell.Name, "softflowd names ifIndex 0 in its options data")
		require.Contains(t, cell.Title, "options data")
		require.Equal(t, "0", cell.Index, "a named ifIndex 0")
		require.Equal(t, "—", cell.Speed, "options data give no speed")
		// A click drills down into the interface, under the API's label.
		in := top(t, base, with("by", "in_if", "n", "10"))
		require.NotEmpty(t, in.Rows)
		require.Equal(t, "127.0.0.1:0", in.Rows[0].Key)
		require.Equal(t, "lab-softflowd /work/main/testd", in.Rows[0].Label)
		b.do(t, chromedp.Click(chromedp.CSS(`#view table.ifaces tr[data-key="127.0.0.1:0"]`)))
		b.waitReady(t)
		hq, err := url.ParseQuery(strings.TrimPrefix(evalJS[string](t, b, `location.hash`), "#/key?"))
		require.NoError(t, err)
		require.Equal(t, "in_if", hq.Get("by"))
		require.Equal(t, "127.0.0.1:0", hq.Get("key"))
		require.Equal(t, in.Rows[0].Label, evalJS[string](t, b, `document.querySelector('#view .drill-key').textContent`))
		require.Empty(t, b.takeProblems())
	})

	t.Run("a configured interface's speed gives the flows' utilization", func(t *testing.T) {
		ps := startDashboard(t, imported(t), func(c *Config) {
			c.Exporters = ExporterNames{lo: "seoul-bb1"}
			c.Interfaces = InterfaceNames{lo: {0: {Name: "xe-0/0/1", Description: "to KT", SpeedMbps: 1, Source: "static"}}}
		})
		bs := "http://" + ps.api.Addr().String()
		live(t, ps)
		tb := b.tab(t)
		tb.open(t, bs+"/#/interfaces?"+rng)
		require.Equal(t, "exporter seoul-bb1 (127.0.0.1)", evalJS[string](t, tb, `document.querySelector('#view section[data-exporter="127.0.0.1"] h2').textContent`))
		var row struct {
			Name, Desc, Title, Speed, SpeedTitle string
			Cells                                []string
			UtilTitle                            string
		}
		tb.eval(t, `(() => { const tr = document.querySelector('#view table.ifaces tr[data-key="127.0.0.1:0"]'); const c = tr.cells;
			return {name: c[1].querySelector('.name').textContent, desc: c[1].querySelector('.desc').textContent, title: c[1].title,
				speed: c[4].textContent, speedTitle: c[4].title, cells: [...c].map(td => td.textContent), utilTitle: c[5].title} })()`, &row)
		require.Equal(t, "xe-0/0/1", row.Name)
		require.Equal(t, "to KT", row.Desc)
		require.Contains(t, row.Title, "configuration")
		require.Equal(t, "1.00\u202fMbps", row.Speed, "speed: 1M, with no sFlow counters")
		require.Contains(t, row.SpeedTitle, "configuration")
		in := top(t, bs, with("by", "in_if", "n", "10"))
		out := top(t, bs, with("by", "out_if", "n", "10"))
		require.Equal(t, "seoul-bb1 xe-0/0/1 (to KT)", in.Rows[0].Label)
		for i, bps := range []float64{in.Rows[0].Bps, out.Rows[0].Bps} {
			u := row.Cells[5+i]
			require.True(t, strings.HasPrefix(u, "≈"), "utilization %q from the flows, marked", u)
			// Shown to 3 significant digits, or to 0.01 % below 10 %.
			require.InDelta(t, bps/1e6, parseShown(t, strings.TrimPrefix(u, "≈")), max(bps/1e6*0.006, 0.00006), "utilization %q of %.0f bps over 1 Mbps", u, bps)
		}
		require.Contains(t, row.UtilTitle, "no sFlow counters")
		// The TopN's interface picker lists it under its label.
		tb.setHash(t, "#/top?"+with("by", "app").Encode())
		ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
		defer cancel()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`[...document.querySelectorAll('#view select[name=if] option')].some(o => o.value === '127.0.0.1:0' && o.textContent === 'seoul-bb1 xe-0/0/1 (to KT)')`,
			chromedp.WithPollingTimeout(25*time.Second)))
		require.NoError(t, err, "the interface picker names the interface")
		require.Empty(t, tb.takeProblems())
	})
}

func base14(p *pipeline) string { return "http://" + p.api.Addr().String() }

// seedDays writes days of minute intervals ending at now through the store
// API: a daily cycle over a few apps, hosts, ports and protocols.
func seedDays(t *testing.T, st *store.Store, days int, now time.Time) {
	t.Helper()
	apps := []string{"https", "http", "dns", "ssh", "postgresql", "smtp", "ntp", "kafka", "redis", "mysql"}
	end := now.Truncate(time.Minute)
	first := end.Add(-time.Duration(days) * 24 * time.Hour)
	const batch = 1440
	ivs := make([]store.Interval, 0, batch)
	for m := first; m.Before(end); m = m.Add(time.Minute) {
		// Traffic follows the hour of day: a trough at night, a peak in the afternoon.
		h := float64(m.Hour()) + float64(m.Minute())/60
		level := 0.35 + 0.65*(1-((h-15)*(h-15))/225)
		if level < 0.2 {
			level = 0.2
		}
		tables := map[topn.Dim]*topn.Table{}
		var total topn.Counters
		for d, keyOf := range map[topn.Dim]func(i int) topn.Key{
			topn.DimApp:   func(i int) topn.Key { return topn.AppKey(apps[i]) },
			topn.DimSrcIP: func(i int) topn.Key { return topn.AddrKey(addr4(10, 1, 0, byte(10+i))) },
			topn.DimDstIP: func(i int) topn.Key { return topn.AddrKey(addr4(192, 168, 1, byte(10+i))) },
			topn.DimPort:  func(i int) topn.Key { return topn.PortKey(uint16(443+i), 6) },
			topn.DimProto: func(i int) topn.Key { return topn.ProtoKey([]uint8{6, 17, 1, 58, 47, 50, 132, 2, 4, 41}[i]) },
		} {
			tab := &topn.Table{}
			for i := range 10 {
				c := topn.Counters{Bytes: uint64(level * 6e9 / float64(i+1)), Packets: uint64(level * 5e6 / float64(i+1)), Flows: uint64(level * 2e4 / float64(i+1))}
				tab.Total.Add(c)
				// The last key drops out of every other minute, as a key near
				// the top-K cut does: over a range it gets an error bound.
				if i == 9 && m.Minute()%2 == 1 {
					tab.Threshold = c
					continue
				}
				tab.Entries = append(tab.Entries, topn.Entry{Key: keyOf(i), Value: c})
			}
			tables[d] = tab
			total = tab.Total
		}
		ivs = append(ivs, store.Interval{Tier: store.TierMinute, Start: m.UTC(), Total: total, Tables: tables})
		if len(ivs) == batch {
			_, _, err := st.Put(now, ivs)
			require.NoError(t, err)
			ivs = ivs[:0]
		}
	}
	if len(ivs) > 0 {
		_, _, err := st.Put(now, ivs)
		require.NoError(t, err)
	}
}

func addr4(a, b, c, d byte) flow.Addr { return flow.AddrFrom(netip.AddrFrom4([4]byte{a, b, c, d})) }
