package api

import (
	"encoding/csv"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// CSV answers are for spreadsheets: one header row, RFC 4180 quoting (by
// encoding/csv, with CRLF line ends), numbers unformatted (raw bytes, bps with
// every digit) so formulas work, times RFC 3339 UTC. How the answer was
// computed, the tiers and exactness, is in the X-Tmsd-Tiers and X-Tmsd-Exact
// headers, and each row's bound in its error columns. A last column,
// counts_per_flow, says on every line what the JSON's field does: 2 where
// each flow counts under both its ends (ip, port), so the share column adds
// up to 2 and the bytes of the keys and other to twice the total's.

// wantCSV reads format=csv|json (declared by p), or else the Accept header.
func wantCSV(c echo.Context, p *param) (bool, error) {
	switch f := c.QueryParam("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, badParam("format", "unknown format %q: one of %s", f, oneOf(p))
	}
	for _, part := range strings.Split(c.Request().Header.Get(echo.HeaderAccept), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/csv" {
			return true, nil
		}
	}
	return false, nil
}

// setAnswerHeaders says how an answer was computed, for the CSV that has no
// room for it: the tiers read, whether it is exact, and the step still open.
func setAnswerHeaders(c echo.Context, tiers []string, exact bool, openStep string) {
	c.Response().Header().Set("X-Tmsd-Tiers", strings.Join(tiers, ","))
	c.Response().Header().Set("X-Tmsd-Exact", strconv.FormatBool(exact))
	if openStep != "" {
		c.Response().Header().Set("X-Tmsd-Open-Step", openStep)
	}
}

func writeCSV(c echo.Context, name string, rows [][]string) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, `attachment; filename="tmsd-`+name+`.csv"`)
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	w.UseCRLF = true
	if err := w.WriteAll(rows); err != nil {
		// The status is sent: the client sees a truncated body.
		c.Logger().Warnf("writing CSV: %v", err)
	}
	return nil
}

func fmtU(v uint64) string  { return strconv.FormatUint(v, 10) }
func fmtF(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
func fmtB(v bool) string    { return strconv.FormatBool(v) }

// optPct is a delta: empty where the earlier figure was zero.
func optPct(v *float64) string {
	if v == nil {
		return ""
	}
	return fmtF(*v)
}

var amountsHeader = []string{"bytes", "packets", "flows", "bps", "pps", "share"}

func (a amounts) csv() []string {
	return []string{fmtU(a.Bytes), fmtU(a.Packets), fmtU(a.Flows), fmtF(a.Bps), fmtF(a.Pps), fmtF(a.Share)}
}

func topCSV(r topResponse) [][]string {
	head := append([]string{"row", "key", "label", "from", "to"}, amountsHeader...)
	out := [][]string{append(head, "error", "counts_per_flow")}
	cpf := strconv.Itoa(r.CountsPerFlow)
	line := func(kind, key, label string, am amounts, errB uint64) {
		out = append(out, append(append([]string{kind, key, label, r.From, r.To}, am.csv()...), fmtU(errB), cpf))
	}
	for _, row := range r.Rows {
		line("key", row.Key, row.Label, row.amounts, row.Error)
	}
	line("other", "other", "other", r.Other.amounts, 0)
	line("total", "total", "total", r.Total.amounts, 0)
	return out
}

var figuresHeader = append(append([]string{}, amountsHeader...),
	"error", "peak_bps", "peak_time", "p95_bps", "peak_bps_error", "p95_bps_error", "exact")

func (r reportFigures) csv() []string {
	return append(r.amounts.csv(), fmtU(r.Error), fmtF(r.PeakBps), r.PeakTime, fmtF(r.P95Bps), fmtF(r.PeakBpsError), fmtF(r.P95BpsError), fmtB(r.Exact))
}

func reportCSV(r reportResponse) [][]string {
	head := append([]string{"row", "key", "label", "from", "to"}, figuresHeader...)
	if r.Compare != nil {
		head = append(head, "prev_from", "prev_to")
		for _, h := range figuresHeader {
			head = append(head, "prev_"+h)
		}
		head = append(head, "delta_total_pct", "delta_avg_bps_pct", "delta_peak_bps_pct", "delta_p95_bps_pct")
	}
	out := [][]string{append(head, "counts_per_flow")}
	cpf := strconv.Itoa(r.CountsPerFlow)
	line := func(kind string, row reportRow) {
		l := append([]string{kind, row.Key, row.Label, r.From, r.To}, row.reportFigures.csv()...)
		if r.Compare != nil {
			l = append(l, r.Compare.From, r.Compare.To)
			l = append(l, row.Previous.csv()...)
			l = append(l, optPct(row.Delta.Total), optPct(row.Delta.Avg), optPct(row.Delta.Peak), optPct(row.Delta.P95))
		}
		out = append(out, append(l, cpf))
	}
	for _, row := range r.Rows {
		line("key", row)
	}
	line("other", r.Other)
	line("total", r.Total)
	return out
}

// seriesCSV is long: a row per step and series ("total", a key, "other"),
// with the earlier period's aligned point on the same row when compared, and
// counts_per_flow last when keys are stacked.
func seriesCSV(r seriesResponse) [][]string {
	pointHeader := []string{"t", "bytes", "packets", "flows", "bps", "pps", "error"}
	head := append([]string{"series"}, pointHeader...)
	if r.Compare != nil {
		for _, h := range pointHeader {
			head = append(head, "prev_"+h)
		}
	}
	cells := func(p seriesPoint) []string {
		return []string{p.T, fmtU(p.Bytes), fmtU(p.Packets), fmtU(p.Flows), fmtF(p.Bps), fmtF(p.Pps), fmtU(p.Error)}
	}
	stacked := r.N > 0
	if stacked {
		head = append(head, "counts_per_flow")
	}
	out := [][]string{head}
	add := func(name string, pts, prev []seriesPoint) {
		for i, p := range pts {
			l := append([]string{name}, cells(p)...)
			if r.Compare != nil {
				l = append(l, cells(prev[i])...)
			}
			if stacked {
				l = append(l, strconv.Itoa(r.CountsPerFlow))
			}
			out = append(out, l)
		}
	}
	var prev seriesData
	if r.Compare != nil {
		prev = r.Compare.seriesData
	}
	for i, s := range r.Stacked {
		var pp []seriesPoint
		if r.Compare != nil {
			pp = prev.Stacked[i].Points
		}
		add(s.Key, s.Points, pp)
	}
	name := "total"
	if r.Key != "" {
		name = r.Key
	}
	add(name, r.Points, prev.Points)
	return out
}
