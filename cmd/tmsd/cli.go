package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tmsd/tmsd/api"
	"github.com/tmsd/tmsd/internal/topn"
)

// `tmsd top` and `tmsd report` are thin clients of a running tmsd's API:
// they build the query from flags, and print the answer as an aligned table
// in human units, or the server's own CSV with --csv. --last is sent as a
// relative time (from=-1h): the server's clock resolves it and widens it to
// whole steps, and the footer prints the range it answered, with the step
// still open. Any failure (server down, token refused, bad parameter relayed
// from the 400) is one line and a non-zero exit.

// cliEnv is what the client commands take from their surroundings.
type cliEnv struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	client         *http.Client
}

// multiFlag is a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func clientCommand(name string, args []string, env cliEnv) error {
	fs := newFlagSet(name)
	server := fs.String("server", "http://127.0.0.1:8080", "`URL` of the running tmsd")
	token := fs.String("token", "", "read `token` (default: $TMSD_TOKEN)")
	by := fs.String("by", "", "`dimension`: "+topn.DimNames()+" (peer with --scope ip=ADDRESS)")
	defLast := "1h"
	if name == "report" {
		defLast = "24h"
	}
	last := fs.String("last", defLast, "the range ending now (`duration`: 15m, 24h, 7d); ignored with --from")
	from := fs.String("from", "", "start (RFC 3339, unix seconds or -24h)")
	to := fs.String("to", "", "end (default now)")
	exporter := fs.String("exporter", "", "only this exporter's flows (`address`)")
	proto := fs.String("proto", "", "only this IP `protocol` (tcp, udp, 6…)")
	var scope multiFlag
	fs.Var(&scope, "scope", "another scope filter of the API, `name=value` (repeatable)")
	n := fs.Int("n", 10, "how many keys")
	metric := fs.String("metric", "bytes", "rank by bytes, packets or flows")
	asCSV := fs.Bool("csv", false, "print the server's CSV instead of a table")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this `duration`")
	var step, compare *string
	if name == "report" {
		step = fs.String("step", "5m", "step of the peak and 95th percentile: 1m, 5m or 1h")
		compare = fs.String("compare", "", "compare with an earlier period: 1d, 7d, 28d or prev")
	}
	if err := parseArgs(fs, args, env.stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(name, "unexpected argument %q", fs.Arg(0))
	}
	if *by == "" {
		return usagef(name, "--by is required (app, ip, dstport…)")
	}
	q := url.Values{"by": {*by}, "n": {fmt.Sprint(*n)}, "metric": {*metric}}
	if *exporter != "" {
		q.Set("exporter", *exporter)
	}
	if *proto != "" {
		q.Set("proto", *proto)
	}
	for _, s := range scope {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("%s: --scope %q: want name=value, such as if=192.0.2.1:3", name, s)
		}
		q.Set(k, v)
	}
	if name == "report" {
		q.Set("step", *step)
		if *compare != "" {
			q.Set("compare", *compare)
		}
	}
	switch {
	case *from != "":
		q.Set("from", *from)
		if *to != "" {
			q.Set("to", *to)
		}
	default:
		d, err := api.ParseDuration(*last)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s: --last %q is not a duration such as 15m, 24h or 7d", name, *last)
		}
		q.Set("from", "-"+*last) // to: now, by the server's clock

	}
	if *token == "" {
		*token = env.getenv("TMSD_TOKEN")
	}
	if *asCSV {
		q.Set("format", "csv")
	}
	u := strings.TrimRight(*server, "/") + "/api/v1/" + name + "?" + q.Encode()
	body, err := fetch(env.client, u, *token, *timeout)
	if err != nil {
		return err
	}
	if *asCSV {
		_, err = env.stdout.Write(body)
		return err
	}
	if name == "top" {
		return printTop(env.stdout, body)
	}
	return printReport(env.stdout, body)
}

// fetch GETs u and returns the body of a 200, or a one-line reason.
func fetch(c *http.Client, u, token string, timeout time.Duration) ([]byte, error) {
	return request(c, http.MethodGet, u, token, timeout, nil)
}

// request sends one request to the API (a JSON body when body is not nil)
// and returns the body of a 2xx, or a one-line reason: the server's own
// message, with the parameter a 400 names. Every client command goes
// through it.
func request(c *http.Client, method, u, token string, timeout time.Duration, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("bad --server: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	cl := *c
	cl.Timeout = timeout
	resp, err := cl.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach tmsd at %s://%s: %w", req.URL.Scheme, req.URL.Host, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", req.URL.Host, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return answer, nil
	}
	var e struct{ Error, Parameter string }
	if json.Unmarshal(answer, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(answer))
	}
	// A joined validation error has a line per rule: keep the one line.
	msg := strings.Join(strings.Fields(strings.ReplaceAll(e.Error, "\n", "; ")), " ")
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if token == "" {
			return nil, errors.New("the server needs a token: give --token or set TMSD_TOKEN")
		}
		return nil, fmt.Errorf("the server refused the token: %s", msg)
	case http.StatusForbidden:
		if method != http.MethodGet {
			return nil, fmt.Errorf("the token may not change this (an admin token is needed): %s", msg)
		}
		return nil, fmt.Errorf("the token may not read this: %s", msg)
	case http.StatusBadRequest:
		if e.Parameter != "" && !strings.HasPrefix(msg, "parameter ") {
			msg = fmt.Sprintf("parameter %q: %s", e.Parameter, msg)
		}
		return nil, fmt.Errorf("bad request: %s", msg)
	case http.StatusNotFound:
		return nil, fmt.Errorf("not found: %s", msg)
	case http.StatusConflict:
		return nil, fmt.Errorf("refused: %s", msg)
	}
	return nil, fmt.Errorf("the server answered %s: %s", resp.Status, msg)
}

// cliAmounts and the types below are the parts of the API's JSON the tables show.
type cliAmounts struct {
	Bytes, Packets, Flows uint64
	Bps, Pps, Share       float64
}

type cliTop struct {
	By, Metric, Scope, From, To string
	OpenStep                    string `json:"open_step"`
	Exact                       bool
	Tiers                       []string
	Rows                        []struct {
		Key, Label string
		cliAmounts
		Error uint64
	}
	Other, Total cliAmounts

	CountsPerFlow int `json:"counts_per_flow"`
}

// bothEnds says, under an ip or port table, why its shares add up to 200 %.
func bothEnds(w io.Writer, countsPerFlow int) {
	if countsPerFlow == 2 {
		fmt.Fprintln(w, "each flow counts at both ends (source and destination): the shares add up to 200%, (other keys) is twice the total minus the rows")
	}
}

func footer(w io.Writer, from, to, extra string, tiers []string, exact bool, note string) {
	how := "exact"
	if !exact {
		how = "bounds: " + note
	}
	fmt.Fprintf(w, "%s – %s%s, from the %s tier(s); %s\n", from, to, extra, strings.Join(tiers, ", "), how)
}

// openNote marks the step of a range still open: its traffic is partial,
// and how says how its figures read.
func openNote(openStep, what, how string) string {
	if openStep == "" {
		return ""
	}
	return "; the " + what + " from " + openStep + " is still open: partial (" + how + ")"
}

func printTop(w io.Writer, body []byte) error {
	var t cliTop
	if err := json.Unmarshal(body, &t); err != nil {
		return fmt.Errorf("the server's answer is not a top: %w", err)
	}
	rows := [][]string{{strings.ToUpper(t.By), "BYTES", "AVG RATE", "AVG PPS", "FLOWS", "SHARE"}}
	line := func(label string, a cliAmounts) {
		rows = append(rows, []string{label, humanBytes(a.Bytes), humanRate(a.Bps, "bps"), humanRate(a.Pps, "pps"),
			fmt.Sprint(a.Flows), humanShare(a.Share)})
	}
	for _, r := range t.Rows {
		label := r.Label
		if r.Error != 0 {
			label += " ~"
		}
		line(label, r.cliAmounts)
	}
	// In parentheses: "other" is also an app, the unclassified traffic.
	line("(other keys)", t.Other)
	line("(total)", t.Total)
	fmt.Fprint(w, alignTable(rows))
	footer(w, t.From, t.To, openNote(t.OpenStep, "minute", "its traffic so far: the rates can only rise"), t.Tiers, t.Exact,
		"rows marked ~ are lower bounds (tables cut below a threshold)")
	bothEnds(w, t.CountsPerFlow)
	return nil
}

type cliFigures struct {
	cliAmounts
	PeakBps  float64 `json:"peak_bps"`
	PeakTime string  `json:"peak_time"`
	P95Bps   float64 `json:"p95_bps"`
	Exact    bool
}

type cliReportRow struct {
	Key, Label string
	cliFigures
	Previous *cliFigures
	Delta    *struct {
		Total *float64
		P95   *float64 `json:"p95_bps"`
	}
}

type cliReport struct {
	By, Step, From, To string
	OpenStep           string `json:"open_step"`
	Exact              bool
	Tiers              []string
	Compare            *struct{ Period, From, To string }
	Rows               []cliReportRow
	Other, Total       cliReportRow
	CountsPerFlow      int `json:"counts_per_flow"`
}

func printReport(w io.Writer, body []byte) error {
	var r cliReport
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("the server's answer is not a report: %w", err)
	}
	head := []string{strings.ToUpper(r.By), "BYTES", "AVG", "PEAK", "PEAK AT", "P95", "SHARE"}
	if r.Compare != nil {
		head = append(head, "PREV BYTES", "Δ BYTES", "PREV P95", "Δ P95")
	}
	rows := [][]string{head}
	line := func(row cliReportRow) {
		label := row.Label
		if !row.Exact {
			label += " ~"
		}
		peakAt := ""
		if t, err := time.Parse(time.RFC3339, row.PeakTime); err == nil && row.PeakBps > 0 {
			peakAt = t.UTC().Format("01-02 15:04")
		}
		l := []string{label, humanBytes(row.Bytes), humanRate(row.Bps, "bps"), humanRate(row.PeakBps, "bps"), peakAt,
			humanRate(row.P95Bps, "bps"), humanShare(row.Share)}
		if r.Compare != nil && row.Previous != nil && row.Delta != nil {
			l = append(l, humanBytes(row.Previous.Bytes), humanDelta(row.Delta.Total), humanRate(row.Previous.P95Bps, "bps"), humanDelta(row.Delta.P95))
		}
		rows = append(rows, l)
	}
	for _, row := range r.Rows {
		line(row)
	}
	r.Other.Label, r.Total.Label = "(other keys)", "(total)"
	line(r.Other)
	line(r.Total)
	fmt.Fprint(w, alignTable(rows))
	extra := ", step " + r.Step + ", p95 by nearest rank"
	extra += openNote(r.OpenStep, "step", "its traffic so far over the whole step: the figures can only rise")
	if r.Compare != nil {
		extra += "; compared with " + r.Compare.From + " – " + r.Compare.To + " (" + r.Compare.Period + ")"
	}
	footer(w, r.From, r.To, extra, r.Tiers, r.Exact, "rows marked ~ are lower bounds (the key fell below a table's threshold at some step)")
	bothEnds(w, r.CountsPerFlow)
	return nil
}
