package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/topn"
)

// cli runs the command line as main does and returns its exit status and outputs.
func cli(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runMain(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// flagsListed are the --flags a command's --help lists.
func flagsListed(help string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z-]+)`).FindAllStringSubmatch(help, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestHelpListsTheCommands(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}} {
		code, out, errOut := cli(args...)
		require.Equal(t, 0, code, args)
		require.Empty(t, errOut, args)
		require.Contains(t, out, "Usage:\n  tmsd [serve] [flags]\n", args)
		for _, c := range []string{"serve", "import", "top", "report", "token", "version"} {
			require.Regexp(t, `(?m)^  `+c+` +\S.*$`, out, "%v: one line for %s", args, c)
		}
		require.Contains(t, out, "Exit status: 0", args)
	}
}

func TestCommandHelpListsItsOwnFlags(t *testing.T) {
	serveOnly := []string{"http", "netflow", "sflow", "tls-cert", "tls-key"}
	clientOnly := []string{"by", "server", "token", "last", "csv"}
	f := func(cmd, usage string, has, hasNot []string) {
		t.Helper()
		for _, args := range [][]string{{cmd, "--help"}, {cmd, "-h"}, {"help", cmd}} {
			code, out, errOut := cli(args...)
			require.Equal(t, 0, code, args)
			require.Empty(t, errOut, "%v: the help goes to stdout, for less", args)
			require.True(t, strings.HasPrefix(out, "Usage: "+usage+"\n"), "%v: %q", args, out)
			listed := flagsListed(out)
			require.Subset(t, listed, has, args)
			for _, no := range hasNot {
				require.NotContains(t, listed, no, "%v lists a flag it does not take", args)
			}
		}
	}
	f("serve", "tmsd serve [flags]", append([]string{"config", "data", "retention"}, serveOnly...), clientOnly)
	f("import", "tmsd import [flags] FILE.pcap…", []string{"config", "data", "retention", "netflow", "sflow", "force", "list"}, append([]string{"http", "tls-cert", "tls-key"}, clientOnly...))
	f("top", "tmsd top --by DIM [flags]", clientOnly, append(serveOnly, "config", "data", "step", "compare"))
	f("report", "tmsd report --by DIM [flags]", append(clientOnly, "step", "compare"), append(serveOnly, "config", "data"))
	f("token", "tmsd token [--admin]", []string{"admin"}, append(serveOnly, "config"))
	f("version", "tmsd version", nil, append(serveOnly, "config"))
	code, out, _ := cli("version", "--help")
	require.Equal(t, 0, code)
	require.Empty(t, flagsListed(out), "version takes no flag")
}

func TestBadCommandLineIsOneLineAndTheHint(t *testing.T) {
	f := func(args []string, wantCode int, wantErr string) {
		t.Helper()
		code, out, errOut := cli(args...)
		require.Equal(t, wantCode, code, args)
		require.Empty(t, out, args)
		require.Equal(t, wantErr, errOut, args)
	}
	f([]string{"bogus"}, 2, "tmsd: unknown command \"bogus\"\nRun 'tmsd --help' for usage.\n")
	f([]string{"help", "bogus"}, 2, "tmsd: help: unknown command \"bogus\"\nRun 'tmsd --help' for usage.\n")
	f([]string{"import", "--http", ":1", "x.pcap"}, 2, "tmsd: import: unknown flag --http\nRun 'tmsd import --help' for usage.\n")
	f([]string{"--bogus"}, 2, "tmsd: serve: unknown flag --bogus\nRun 'tmsd serve --help' for usage.\n")
	f([]string{"serve", "extra"}, 2, "tmsd: serve: unexpected argument \"extra\"\nRun 'tmsd serve --help' for usage.\n")
	f([]string{"import"}, 2, "tmsd: import: name at least one pcap file\nRun 'tmsd import --help' for usage.\n")
	f([]string{"import", "--data"}, 2, "tmsd: import: --data needs a value\nRun 'tmsd import --help' for usage.\n")
	f([]string{"top", "--n", "ten"}, 2, "tmsd: top: --n: invalid value \"ten\": parse error\nRun 'tmsd top --help' for usage.\n")
	f([]string{"top", "--csv=maybe"}, 2, "tmsd: top: --csv: invalid boolean value \"maybe\": parse error\nRun 'tmsd top --help' for usage.\n")
	f([]string{"report"}, 2, "tmsd: report: --by is required (app, ip, dstport…)\nRun 'tmsd report --help' for usage.\n")
	f([]string{"token", "extra"}, 2, "tmsd: token: takes no arguments\nRun 'tmsd token --help' for usage.\n")
	f([]string{"version", "extra"}, 2, "tmsd: version: takes no arguments\nRun 'tmsd version --help' for usage.\n")
	// A bad value of a flag names the flag, and the command line is at fault.
	f([]string{"--retention", "soon"}, 2, "tmsd: serve: --retention: \"soon\" is not a duration such as 90m, 36h or 14d\nRun 'tmsd serve --help' for usage.\n")
	f([]string{"serve", "--netflow", "bogus"}, 2, "tmsd: serve: --netflow: \"bogus\" is not a listen address HOST:PORT, such as :2055 or 192.0.2.1:2055: missing port in address\n"+
		"Run 'tmsd serve --help' for usage.\n")
	f([]string{"import", "--data", "", "x.pcap"}, 2, "tmsd: import: --data: want a directory, got \"\"\nRun 'tmsd import --help' for usage.\n")
	// An error of the configuration file or at run time is one line, status 1.
	f([]string{"serve", "--config", "/nonexistent/tmsd.yaml"}, 1, "tmsd: config: open /nonexistent/tmsd.yaml: no such file or directory\n")
	p := writeConfig(t, "aggregate: {top_k: -5}\n")
	f([]string{"import", "--config", p, "x.pcap"}, 1, "tmsd: "+p+":1: aggregate.top_k: want a whole number >= 1, got -5\n")
}

func TestVersionLine(t *testing.T) {
	goLine := " " + runtime.GOOS + "/" + runtime.GOARCH
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/tmsd/tmsd", Version: "v0.0.0-20261123013502-72b926613f0d+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "72b926613f0d384d22fd754df23045efba9f2207"},
			{Key: "vcs.time", Value: "2026-11-23T01:35:02Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	require.Equal(t, "tmsd v0.0.0-20261123013502-72b926613f0d+dirty (commit 72b926613f0d384d22fd754df23045efba9f2207, 2026-11-23T01:35:02Z, dirty) go1.26.8"+goLine,
		versionLine(bi, true))
	bi.Settings[3].Value = "false"
	require.Equal(t, "tmsd v0.0.0-20261123013502-72b926613f0d+dirty (commit 72b926613f0d384d22fd754df23045efba9f2207, 2026-11-23T01:35:02Z) go1.26.8"+goLine,
		versionLine(bi, true))
	// go run, go test, -buildvcs=false: no VCS settings, version (devel).
	require.Equal(t, "tmsd unknown (commit unknown) go1.26.8"+goLine,
		versionLine(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/tmsd/tmsd", Version: "(devel)"}}, true))
	require.Equal(t, "tmsd unknown (commit unknown) "+runtime.Version()+goLine, versionLine(nil, false))

	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, out, errOut := cli(args...)
		require.Equal(t, 0, code, args)
		require.Empty(t, errOut, args)
		require.Equal(t, versionLine(debug.ReadBuildInfo())+"\n", out, args)
	}
}

// The real binary, built as a user builds it, prints its commit: the one
// git says is checked out.
func TestVersionOfTheBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "tmsd")
	// -buildvcs=auto is go build's default, given here because GOFLAGS may turn it off.
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	out, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	line := strings.TrimSuffix(string(out), "\n")
	m := regexp.MustCompile(`^tmsd (\S+) \(commit ([0-9a-f]{40}|unknown)(?:, (\S+?))?(, dirty)?\) (go\S+) (\S+)$`).FindStringSubmatch(line)
	require.NotNil(t, m, line)
	require.Equal(t, runtime.Version(), m[5], line)
	require.Equal(t, runtime.GOOS+"/"+runtime.GOARCH, m[6], line)

	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		require.Equal(t, "unknown", m[2], line)
		t.Skipf("not in a git checkout (git rev-parse: %v): the commit cannot be checked; the binary says %q", err, line)
	}
	if st, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !st.IsDir() {
		require.Equal(t, "unknown", m[2], line)
		t.Skipf("a git worktree (.git is a file): go build stamps no VCS information there; the binary says %q", line)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	require.NoError(t, err)
	require.Equal(t, strings.TrimSpace(string(head)), m[2], line)
	ct, err := exec.Command("git", "log", "-1", "--format=%ct").Output()
	require.NoError(t, err)
	sec, err := strconv.ParseInt(strings.TrimSpace(string(ct)), 10, 64)
	require.NoError(t, err)
	require.Equal(t, time.Unix(sec, 0).UTC().Format(time.RFC3339), m[3], "the commit's time")
	require.NotEqual(t, "unknown", m[1], "go build stamps the main module's version")
}

// tmsd top and tmsd report --help name every dimension --by takes.
func TestClientHelpNamesEveryDimension(t *testing.T) {
	for _, cmd := range []string{"top", "report"} {
		code, out, _ := cli(cmd, "--help")
		require.Equal(t, 0, code)
		line := regexp.MustCompile(`(?m)^  --by .*$`).FindString(out)
		for _, d := range strings.Split(topn.DimNames(), ", ") {
			require.Regexp(t, `\b`+d+`\b`, line, "%s --help: --by omits %s", cmd, d)
		}
	}
}
