package main

import (
	"bytes"
	"encoding/csv"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/api"
)

// alertsNow is the clock of the served pipeline: the day after the capture's
// minute, so that the default --last 24h of history holds its events and the
// evaluation loop, on a frozen clock, finds no traffic of its own to judge.
var alertsNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// alertsMinute is the capture's minute (softflowd-v9.pcap: its flows end at 19:47).
var alertsMinute = time.Date(2026, 11, 22, 19, 47, 0, 0, time.UTC)

// serveAlerts runs tmsd serve in-process, on a frozen clock, on the store of
// softflowd-v9.pcap, with read and admin tokens and two file rules: one that
// fires on the capture's https (4,214,706 bytes in its minute, 562 kbps) and
// a baseline rule that has no earlier weeks to judge by. It returns the
// pipeline and its API's base URL; it is stopped at the end of the test.
func serveAlerts(t *testing.T) (*pipeline, string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, run([]string{"import", "--data", data, "--retention", "36500d", "../../testdata/pcaps/softflowd-v9.pcap"}, io.Discard, io.Discard))
	conf := writeConfig(t, `api:
  read_tokens: ["`+api.HashToken(testReadToken).ConfigValue()+`"]
  admin_tokens: ["`+api.HashToken(testAdminToken).ConfigValue()+`"]
alerts:
  rules:
    - {name: https-busy, dim: app, key: https, threshold: 1k, severity: critical}
    - {name: https-weeks, dim: app, key: https, baseline: {ratio: 2}}
`)
	cfg, _, err := parseFlags("serve", []string{"--config", conf, "--data", data, "--retention", "36500d",
		"--netflow", "127.0.0.1:0", "--sflow", "127.0.0.1:0", "--http", "127.0.0.1:0"}, io.Discard)
	require.NoError(t, err)
	p, err := newPipeline(cfg, newLogger("error"), func() time.Time { return alertsNow })
	require.NoError(t, err)
	require.NoError(t, p.startServe(cfg))
	t.Cleanup(func() { require.NoError(t, p.stop()) })
	require.NotNil(t, p.alerts)
	return p, "http://" + p.api.Addr().String()
}

// alertsCLI runs `tmsd alerts SUB --server base ARGS…` with $TMSD_TOKEN set to token.
func alertsCLI(base, token, sub string, args ...string) (string, error) {
	var out bytes.Buffer
	env := cliEnv{stdout: &out, stderr: io.Discard, client: &http.Client{}, getenv: func(k string) string {
		if k == "TMSD_TOKEN" {
			return token
		}
		return ""
	}}
	err := alertsCommand(append([]string{sub, "--server", base}, args...), env)
	return out.String(), err
}

// alertsGet is a plain GET of the API, to compare the CLI's passthroughs with.
func alertsGet(t *testing.T, u, token string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return b
}

func outLines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

// The CLI against a real tmsd serve whose file rule fires: the active table,
// the history as a table and as the server's CSV, the rules with their
// origin, an API rule put from YAML and deleted, a bad rule's 400 relayed
// naming the field, a silence and its end, and the refusals of the tokens.
func TestAlertsCLI(t *testing.T) {
	p, base := serveAlerts(t)
	read, admin := testReadToken, testAdminToken

	// Nothing evaluated yet: the loop's clock is frozen on a minute without traffic.
	out, err := alertsCLI(base, read, "active")
	require.NoError(t, err)
	require.Equal(t, "no alerts firing", outLines(out)[0], out)
	require.Equal(t, "0 firing, 0 pending, of 2 rules", outLines(out)[len(outLines(out))-1], out)

	require.NoError(t, p.alerts.EvaluateMinute(alertsMinute))

	t.Run("active", func(t *testing.T) {
		for _, sub := range [][]string{{"active"}, {"--timeout", "30s"}} { // active is the default
			var buf bytes.Buffer
			env := cliEnv{stdout: &buf, stderr: io.Discard, client: &http.Client{}, getenv: func(string) string { return read }}
			require.NoError(t, alertsCommand(append(sub, "--server", base), env))
			l := outLines(buf.String())
			require.Len(t, l, 5, buf.String()) // head, the firing alert, the baseline rule's note and key, footer
			require.Regexp(t, `^STATE\s+RULE\s+SEVERITY\s+KEY\s+VALUE\s+THRESHOLD\s+SINCE\s+FLAGS$`, l[0])
			require.Regexp(t, `^firing\s+https-busy\s+critical\s+app=https\s+562 kbps\s+> 1\.00 kbps\s+2026-11-22T19:47:00Z$`, l[1])
			require.Equal(t, "baseline rules not judged (history too short):", l[2])
			require.Regexp(t, `^  https-weeks app=https: history too short: 0 of 4 weeks$`, l[3])
			require.Equal(t, "1 firing, 0 pending, of 2 rules", l[4])
		}
	})

	t.Run("history", func(t *testing.T) {
		row := `^2026-11-22T19:47:00Z\s+firing\s+https-busy\s+app=https\s+562 kbps\s+1\.00 kbps\s+https-busy: app https at 561\.96 kbps > 1\.00 kbps since 19:47 UTC$`
		f := func(args []string, wantRows []string, wantFoot string) {
			t.Helper()
			out, err := alertsCLI(base, read, "history", args...)
			require.NoError(t, err, args)
			l := outLines(out)
			if wantRows == nil {
				require.Equal(t, []string{wantFoot}, l, args)
				return
			}
			require.Len(t, l, len(wantRows)+2, out)
			require.Regexp(t, `^AT\s+KIND\s+RULE\s+KEY\s+VALUE\s+THRESHOLD\s+SUMMARY$`, l[0])
			for i, w := range wantRows {
				require.Regexp(t, w, l[i+1], args)
			}
			require.Equal(t, wantFoot, l[len(l)-1], args)
		}
		day := "2026-11-22T12:00:00Z – 2026-11-23T12:00:00Z"
		f(nil, []string{row}, day+": 1 event")
		f([]string{"--rule", "https-busy", "--state", "firing", "-n", "5"}, []string{row}, day+": 1 event")
		f([]string{"--from", "2026-11-22T19:00:00Z", "--to", "2026-11-22T20:00:00Z"}, []string{row}, "2026-11-22T19:00:00Z – 2026-11-22T20:00:00Z: 1 event")
		f([]string{"--state", "resolved"}, nil, "no alert events from "+strings.ReplaceAll(day, " – ", " to "))
		f([]string{"--last", "1h"}, nil, "no alert events from 2026-11-23T11:00:00Z to 2026-11-23T12:00:00Z")

		// --csv is the server's CSV, byte for byte.
		out, err := alertsCLI(base, read, "history", "--csv")
		require.NoError(t, err)
		require.Equal(t, string(alertsGet(t, base+"/api/v1/alerts?from=-24h&format=csv", read)), out)
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		require.NoError(t, err)
		require.Equal(t, strings.Split("at,kind,rule,severity,scope,dim,key,label,metric,value,threshold,baseline,bounded,error,since,ends_at,summary,url", ","), recs[0])
		require.Len(t, recs, 2, out)
		require.Equal(t, []string{"firing", "https-busy", "critical"}, recs[1][1:4])

		_, err = alertsCLI(base, read, "history", "--state", "burning")
		require.ErrorContains(t, err, `bad request: parameter "state"`)
		_, err = alertsCLI(base, read, "history", "--last", "soon")
		require.ErrorContains(t, err, `--last "soon" is not a duration`)
	})

	ruleRow := func(name, origin, scope, what, cond, forD, severity string) string {
		return `(?m)^` + regexp.QuoteMeta(name) + `\s+` + origin + `\s+` + regexp.QuoteMeta(scope) + `\s+` + regexp.QuoteMeta(what) +
			`\s+` + regexp.QuoteMeta(cond) + `\s+` + forD + `\s+` + severity + `\s+-$`
	}
	t.Run("rules", func(t *testing.T) {
		out, err := alertsCLI(base, read, "rules")
		require.NoError(t, err)
		require.Len(t, outLines(out), 3, out)
		require.Regexp(t, `^NAME\s+ORIGIN\s+SCOPE\s+WHAT\s+CONDITION\s+FOR\s+SEVERITY\s+TARGETS$`, outLines(out)[0])
		require.Regexp(t, ruleRow("https-busy", "file", "all", "app=https", "bps > 1k", "0", "critical"), out)
		require.Regexp(t, ruleRow("https-weeks", "file", "all", "app=https", "bps > baseline×2 (4 weeks)", "0", "warning"), out)

		out, err = alertsCLI(base, read, "rules", "--json")
		require.NoError(t, err)
		require.Equal(t, string(alertsGet(t, base+"/api/v1/alerts/rules", read)), out)
		require.Contains(t, out, `"origin":"file"`)
	})

	t.Run("put and delete", func(t *testing.T) {
		dir := t.TempDir()
		write := func(name, body string) string {
			path := filepath.Join(dir, name)
			require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
			return path
		}
		yamlRule := write("ssh.yaml", "# as a rule of alerts.rules writes it\nscope: exporter=192.0.2.1\ndim: app\nkey: ssh\nthreshold: 50M\nfor: 5m\n")
		out, err := alertsCLI(base, admin, "put", "ssh-busy", "--file", yamlRule)
		require.NoError(t, err)
		require.Equal(t, `rule "ssh-busy" in force:`, outLines(out)[0])
		require.Regexp(t, ruleRow("ssh-busy", "api", "exporter=192.0.2.1", "app=ssh", "bps > 50M", "5m", "warning"), out)
		out, err = alertsCLI(base, read, "rules")
		require.NoError(t, err)
		require.Len(t, outLines(out), 4, out)
		require.Regexp(t, ruleRow("ssh-busy", "api", "exporter=192.0.2.1", "app=ssh", "bps > 50M", "5m", "warning"), out)
		require.Regexp(t, ruleRow("https-busy", "file", "all", "app=https", "bps > 1k", "0", "critical"), out)

		// A JSON file goes as it is, and a put replaces.
		_, err = alertsCLI(base, admin, "put", "--file", write("ssh.json", `{"dim":"app","key":"ssh","threshold":"80M","severity":"info"}`), "ssh-busy")
		require.NoError(t, err)
		out, err = alertsCLI(base, read, "rules")
		require.NoError(t, err)
		require.Regexp(t, ruleRow("ssh-busy", "api", "all", "app=ssh", "bps > 80M", "0", "info"), out)

		// Refusals: the server's, one line each, naming the field.
		f := func(token, name, file, want string) {
			t.Helper()
			_, err := alertsCLI(base, token, "put", name, "--file", file)
			require.ErrorContains(t, err, want)
			require.NotContains(t, err.Error(), "\n")
		}
		f(admin, "bad", write("bad.yaml", "dim: app\nkey: https\nthreshold: 8X\n"), `bad request: parameter "threshold"`)
		f(admin, "bad", write("bad-op.json", `{"dim":"app","key":"https","op":"~","threshold":"8G"}`), `bad request: parameter "op"`)
		f(admin, "https-busy", yamlRule, "refused: ")
		f(read, "ssh-busy", yamlRule, "the token may not change this (an admin token is needed)")
		f("", "ssh-busy", yamlRule, "the server needs a token: give --token or set TMSD_TOKEN")
		f(admin, "typo", write("typo.yaml", "dim: app\nkey: https\ntreshold: 8G\n"), "typo.yaml: line 3: field treshold not found")
		f(admin, "x", filepath.Join(dir, "missing.yaml"), "no such file")

		out, err = alertsCLI(base, admin, "delete", "ssh-busy")
		require.NoError(t, err)
		require.Equal(t, "deleted rule \"ssh-busy\"\n", out)
		out, err = alertsCLI(base, read, "rules")
		require.NoError(t, err)
		require.NotContains(t, out, "ssh-busy")
		_, err = alertsCLI(base, admin, "delete", "ssh-busy")
		require.ErrorContains(t, err, "not found: ")
		_, err = alertsCLI(base, admin, "delete", "https-busy")
		require.ErrorContains(t, err, "refused: ")
	})

	t.Run("silence", func(t *testing.T) {
		out, err := alertsCLI(base, read, "silences")
		require.NoError(t, err)
		require.Equal(t, "no silences in force\n", out)

		out, err = alertsCLI(base, admin, "silence", "--rule", "https-busy", "--key", "https", "--for", "2h", "--comment", "planned transfer")
		require.NoError(t, err)
		m := regexp.MustCompile(`^silence (\S+): rule "https-busy", key https, until 2026-11-23T14:00:00Z \(tmsd alerts unsilence (\S+) ends it\)\n$`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		id := m[1]
		require.Equal(t, id, m[2])

		out, err = alertsCLI(base, read, "silences")
		require.NoError(t, err)
		require.Len(t, outLines(out), 2, out)
		require.Regexp(t, `^ID\s+RULE\s+KEY\s+UNTIL\s+COMMENT$`, outLines(out)[0])
		require.Regexp(t, `^`+regexp.QuoteMeta(id)+`\s+https-busy\s+https\s+2026-11-23T14:00:00Z\s+planned transfer$`, outLines(out)[1])
		out, err = alertsCLI(base, read, "active")
		require.NoError(t, err)
		require.Regexp(t, `(?m)^firing\s+https-busy\s.*\s2026-11-22T19:47:00Z\s+silenced$`, out)

		_, err = alertsCLI(base, read, "unsilence", id)
		require.ErrorContains(t, err, "the token may not change this")
		out, err = alertsCLI(base, admin, "unsilence", id)
		require.NoError(t, err)
		require.Equal(t, "silence "+id+" ended\n", out)
		out, err = alertsCLI(base, read, "silences")
		require.NoError(t, err)
		require.Equal(t, "no silences in force\n", out)
		out, err = alertsCLI(base, read, "active")
		require.NoError(t, err)
		require.Regexp(t, `(?m)^firing\s+https-busy\s.*\s2026-11-22T19:47:00Z$`, out)
		_, err = alertsCLI(base, admin, "unsilence", id)
		require.ErrorContains(t, err, "not found: ")

		_, err = alertsCLI(base, admin, "silence", "--rule", "https-busy", "--for", "soon")
		require.ErrorContains(t, err, `bad request: parameter "for"`)
	})

	t.Run("tmsd alerts", func(t *testing.T) {
		// Through the command line as main runs it: --token, exit status 0.
		code, stdout, stderr := cli("alerts", "--server", base, "--token", read)
		require.Equal(t, 0, code, stderr)
		require.Empty(t, stderr)
		require.Regexp(t, `(?m)^firing\s+https-busy\s`, stdout)
		code, stdout, stderr = cli("alerts", "rules", "--server", base, "--token", "tmsd_not-a-token-of-this-server-0123456789ab")
		require.Equal(t, 1, code)
		require.Empty(t, stdout)
		require.Regexp(t, `^tmsd: the server refused the token: .*\n$`, stderr)
	})
}

// A server down, and a command line tmsd alerts cannot take: one line and a
// non-zero exit.
func TestAlertsCLIFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	for _, args := range [][]string{{}, {"history"}, {"rules"}, {"silences"}, {"delete", "x"}, {"unsilence", "1"}, {"silence", "--rule", "x", "--for", "1h"}} {
		code, stdout, stderr := cli(append(append([]string{"alerts"}, args...), "--server", closed, "--timeout", "10s")...)
		require.Equal(t, exitError, code, args)
		require.Empty(t, stdout, args)
		require.True(t, strings.HasPrefix(stderr, "tmsd: cannot reach tmsd at "+closed+": "), "%v: %q", args, stderr)
		require.Equal(t, 1, strings.Count(stderr, "\n"), "%v: %q", args, stderr)
	}

	f := func(args []string, wantErr string) {
		t.Helper()
		code, stdout, stderr := cli(append([]string{"alerts"}, args...)...)
		require.Equal(t, exitUsage, code, args)
		require.Empty(t, stdout, args)
		require.Equal(t, wantErr, stderr, args)
	}
	f([]string{"bogus"}, "tmsd: alerts: unknown subcommand \"bogus\" (active, history, rules, put, delete, silence, silences, unsilence)\nRun 'tmsd alerts --help' for usage.\n")
	f([]string{"put", "x"}, "tmsd: alerts put: --file is required\nRun 'tmsd alerts put --help' for usage.\n")
	f([]string{"put", "--file", "r.yaml"}, "tmsd: alerts put: missing argument NAME\nRun 'tmsd alerts put --help' for usage.\n")
	f([]string{"delete", "a", "b"}, "tmsd: alerts delete: unexpected argument \"b\"\nRun 'tmsd alerts delete --help' for usage.\n")
	f([]string{"silence", "--rule", "x"}, "tmsd: alerts silence: give one of --for and --until\nRun 'tmsd alerts silence --help' for usage.\n")
	f([]string{"silence", "--for", "1h"}, "tmsd: alerts silence: --rule is required\nRun 'tmsd alerts silence --help' for usage.\n")
	f([]string{"history", "-n", "ten"}, "tmsd: alerts history: --n: invalid value \"ten\": parse error\nRun 'tmsd alerts history --help' for usage.\n")
	f([]string{"rules", "--csv"}, "tmsd: alerts rules: unknown flag --csv\nRun 'tmsd alerts rules --help' for usage.\n")
}

// tmsd --help lists alerts; tmsd alerts --help its subcommands, and each
// subcommand's --help its own flags.
func TestAlertsCLIHelp(t *testing.T) {
	code, out, _ := cli("--help")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^  alerts +\S.*$`, out)
	for _, args := range [][]string{{"alerts", "--help"}, {"help", "alerts"}} {
		code, out, errOut := cli(args...)
		require.Equal(t, 0, code, args)
		require.Empty(t, errOut, args)
		require.True(t, strings.HasPrefix(out, "Usage: tmsd alerts [SUBCOMMAND] [flags]\n"), out)
		for _, s := range alertsSubcommands {
			require.Regexp(t, `(?m)^  `+s.name+` +\S.*$`, out, args)
		}
	}
	common := []string{"server", "token", "timeout"}
	f := func(sub, usage string, has ...string) {
		t.Helper()
		code, out, errOut := cli("alerts", sub, "--help")
		require.Equal(t, 0, code, sub)
		require.Empty(t, errOut, sub)
		require.True(t, strings.HasPrefix(out, "Usage: tmsd alerts "+usage+"\n"), "%s: %q", sub, out)
		require.ElementsMatch(t, append(has, common...), flagsListed(out), sub)
	}
	f("active", "active [flags]")
	f("history", "history [--last 24h | --from T --to T] [--state KIND] [--rule NAME] [-n N] [--csv]", "last", "from", "to", "state", "rule", "n", "csv")
	f("rules", "rules [--json]", "json")
	f("put", "put NAME --file FILE", "file")
	f("delete", "delete NAME")
	f("silence", "silence --rule NAME [--key KEY] --for DURATION [--comment TEXT]", "rule", "key", "for", "until", "comment")
	f("silences", "silences [flags]")
	f("unsilence", "unsilence ID")
	code, out, _ = cli("alerts", "put", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "admin token")
}
