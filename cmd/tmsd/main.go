// Command tmsd is the traffic management system collector: it receives NetFlow
// v5/v9, IPFIX and sFlow v5, keeps per-minute TopN tables, and answers a REST API.
// This file only parses the configuration, builds the components in dependency
// order, starts them, waits for a signal and stops them in reverse.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/tmsd/tmsd/api"
)

func main() { os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit statuses: 0 success (and --help), 2 a command line tmsd cannot take
// (unknown command or flag, a flag's value of the wrong form, a missing or
// extra argument), 1 any other error (the configuration file, a refused
// value, a failure at run time).
const (
	exitError = 1
	exitUsage = 2
)

// runMain runs the command line and prints its error: one line, followed by
// the usage hint when the command line was at fault. It returns the exit status.
func runMain(args []string, stdout, stderr io.Writer) int {
	err := run(args, stdout, stderr)
	var ue *usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "tmsd: %v\nRun 'tmsd %s--help' for usage.\n", err, strings.TrimPrefix(ue.cmd+" ", " "))
		return exitUsage
	}
	fmt.Fprintln(stderr, "tmsd:", err)
	return exitError
}

// usageError is a command line tmsd cannot take; cmd is the command ("" before one is known).
type usageError struct {
	cmd string
	err error
}

func (e *usageError) Error() string {
	if e.cmd == "" {
		return e.err.Error()
	}
	return e.cmd + ": " + e.err.Error()
}

func (e *usageError) Unwrap() error { return e.err }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// commands are tmsd's subcommands, in the order --help lists them.
var commands = []struct{ name, args, summary string }{
	{"serve", "[flags]", "receive NetFlow v5/v9, IPFIX and sFlow v5, keep the TopN tables, serve the API and dashboard (the default)"},
	{"import", "[flags] FILE.pcap…", "run captured export datagrams through the same pipeline into the store"},
	{"top", "--by DIM [flags]", "print a running tmsd's top keys over a range"},
	{"report", "--by DIM [flags]", "print a running tmsd's per-key totals, average, peak and 95th percentile"},
	{"alerts", "[SUBCOMMAND] [flags]", "print a running tmsd's alerts, their history, rules and silences; change rules and silences"},
	{"token", "[--admin]", "make an API token and print the configuration lines with its hash"},
	{"version", "", "print the version, commit and Go version"},
}

func usage(w io.Writer) {
	fmt.Fprint(w, "tmsd collects NetFlow v5/v9, IPFIX and sFlow v5 into per-minute TopN tables and answers a REST API.\n\n"+
		"Usage:\n  tmsd [serve] [flags]\n  tmsd COMMAND [flags] [arguments]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "  help     this help; tmsd help COMMAND (or tmsd COMMAND --help) lists a command's flags\n\n"+
		"Exit status: 0 done, 1 an error (configuration, run time), 2 a bad command line.\n")
}

func run(args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "-h" || a == "-help" || a == "--help":
			cmd, args = "help", args[1:]
		case a == "-version" || a == "--version":
			cmd, args = "version", args[1:]
		case !strings.HasPrefix(a, "-"):
			cmd, args = a, args[1:]
		}
	}
	switch cmd {
	case "serve":
		cfg, rest, err := parseFlags("serve", args, stdout)
		if err != nil {
			return err
		}
		if len(rest) > 0 {
			return usagef("serve", "unexpected argument %q", rest[0])
		}
		return serve(cfg, args)
	case "import":
		fs := newFlagSet("import")
		var opt importOptions
		fs.BoolVar(&opt.force, "force", false, "import files this store has imported before (same SHA-256) again: their traffic then counts twice")
		fs.BoolVar(&opt.list, "list", false, "list the files this store has imported and what each wrote; import nothing")
		cfg, files, err := parseConfigFlags(fs, "import", args, stdout)
		if err != nil {
			return err
		}
		if opt.list {
			return listImports(cfg, stdout)
		}
		if len(files) == 0 {
			return usagef("import", "name at least one pcap file")
		}
		return importFiles(cfg, files, opt, stdout, stderr)
	case "token":
		return tokenCommand(args, stdout, stderr)
	case "top", "report":
		return clientCommand(cmd, args, cliEnv{stdout: stdout, stderr: stderr, getenv: os.Getenv, client: &http.Client{}})
	case "alerts":
		return alertsCommand(args, cliEnv{stdout: stdout, stderr: stderr, getenv: os.Getenv, client: &http.Client{}})
	case "version":
		if err := parseArgs(newFlagSet("version"), args, stdout); err != nil {
			return err
		}
		if len(args) > 0 {
			return usagef("version", "takes no arguments")
		}
		_, err := fmt.Fprintln(stdout, versionLine(debug.ReadBuildInfo()))
		return err
	case "help":
		switch {
		case len(args) == 0:
			usage(stdout)
			return nil
		case commandUsage(args[0]) != "":
			return run([]string{args[0], "--help"}, stdout, stderr)
		}
		return usagef("", "help: unknown command %q", args[0])
	}
	return usagef("", "unknown command %q", cmd)
}

// commandUsage is the usage line of a command ("" for none).
func commandUsage(name string) string {
	for _, c := range commands {
		if c.name == name {
			return strings.TrimSpace("tmsd " + c.name + " " + c.args)
		}
	}
	return ""
}

// newFlagSet is a command's flag set: `tmsd CMD --help` prints its usage
// line, what it does and its own flags, on stdout (parseArgs).
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("tmsd "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseArgs says what went wrong, in one line
	fs.Usage = func() {
		w := fs.Output()
		summary := ""
		for _, c := range commands {
			if c.name == name {
				summary = c.summary
			}
		}
		fmt.Fprintf(w, "Usage: %s\n\n%s.\n", commandUsage(name), strings.ToUpper(summary[:1])+summary[1:])
		printFlags(w, fs)
	}
	return fs
}

// parseArgs parses a command's flags. --help prints the usage on stdout and
// returns flag.ErrHelp (exit 0); a flag tmsd cannot take is a usageError.
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	if err != nil {
		msg := err.Error()
		for _, r := range flagErrors {
			msg = r.re.ReplaceAllString(msg, r.with)
		}
		return &usageError{cmd: strings.TrimPrefix(fs.Name(), "tmsd "), err: errors.New(msg)}
	}
	return nil
}

// flagErrors rewrite the flag package's errors to name flags as --help does.
var flagErrors = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`^flag provided but not defined: -+(\S+)$`), "unknown flag --$1"},
	{regexp.MustCompile(`^flag needs an argument: -+(\S+)$`), "--$1 needs a value"},
	{regexp.MustCompile(`^invalid (boolean )?value (".*") for (?:flag )?-+([\w-]+): `), "--$3: invalid ${1}value $2: "},
}

// printFlags lists the flags as the README writes them: --name VALUE, the
// usage, and the default where there is one.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	var rows [][2]string
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		placeholder, text := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if placeholder != "" {
			name += " " + strings.ToUpper(placeholder)
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			text += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		rows = append(rows, [2]string{name, text})
		width = max(width, len([]rune(name)))
	})
	if len(rows) == 0 {
		return
	}
	fmt.Fprint(w, "\nFlags:\n")
	for _, r := range rows {
		fmt.Fprintf(w, "  %s%s  %s\n", r[0], strings.Repeat(" ", width-len([]rune(r[0]))), r[1])
	}
}

// versionLine is what `tmsd version` prints, from the build information Go
// stamps in the binary: the main module's version and, built in a git
// checkout, the commit, its time and whether the tree had changes. What a
// build (go run, go test, -buildvcs=false) did not stamp reads "unknown".
func versionLine(bi *debug.BuildInfo, ok bool) string {
	version, commit, when, dirty := "unknown", "unknown", "", false
	goVersion := runtime.Version()
	if ok && bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	vcs := "commit " + commit
	if when != "" {
		vcs += ", " + when
	}
	if dirty {
		vcs += ", dirty"
	}
	return fmt.Sprintf("tmsd %s (%s) %s %s/%s", version, vcs, goVersion, runtime.GOOS, runtime.GOARCH)
}

// configFlags are the flags that override a configuration key, with the
// commands that take each: giving a flag to another command is a change of
// that list. A value of the wrong form is a usageError; a value of the right
// form is checked with the file's (Config.check), named by its flag.
var configFlags = []struct {
	name, key, commands, usage string
	value                      func(c *Config) string
	set                        func(c *Config, v string) error
}{
	{"netflow", "netflow", "serve import", "NetFlow v5/v9 and IPFIX listen `addresses`, comma-separated (import: datagrams to their ports are flow export)",
		func(c *Config) string { return strings.Join(c.NetFlow, ",") },
		func(c *Config, v string) error { c.NetFlow = splitList(v); return nil }},
	{"sflow", "sflow", "serve import", "sFlow v5 listen `addresses`, comma-separated (import: datagrams to their ports are flow export)",
		func(c *Config) string { return strings.Join(c.SFlow, ",") },
		func(c *Config, v string) error { c.SFlow = splitList(v); return nil }},
	{"http", "http", "serve", "REST API and dashboard listen `address`",
		func(c *Config) string { return c.HTTP }, func(c *Config, v string) error { c.HTTP = v; return nil }},
	{"data", "data", "serve import", "data `directory`",
		func(c *Config) string { return c.Data }, func(c *Config, v string) error { c.Data = v; return nil }},
	{"retention", "retention.minute", "serve import", "how long the minute tier is kept, a `duration` such as 90m, 36h or 14d",
		func(c *Config) string { return c.Retention.Minute.String() },
		func(c *Config, v string) error {
			d, err := api.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q is not a duration such as 90m, 36h or 14d", v)
			}
			c.Retention.Minute = Duration(d)
			return nil
		}},
	{"geoip-country", "geoip.country", "serve import", "country database `file` (.mmdb: MaxMind GeoIP2/GeoLite2, DB-IP, IPinfo, ip-location-db); empty: the embedded default",
		func(c *Config) string { return c.GeoIP.Country }, func(c *Config, v string) error { c.GeoIP.Country = v; return nil }},
	{"geoip-asn", "geoip.asn", "serve import", "AS database `file` (.mmdb: GeoLite2-ASN, DB-IP, IPinfo); empty: the embedded default",
		func(c *Config) string { return c.GeoIP.ASN }, func(c *Config, v string) error { c.GeoIP.ASN = v; return nil }},
	{"role", "role", "serve", "`role` of this process: all (one process, no Kafka), collector (decode and publish to Kafka) or aggregator (consume from Kafka, count, store, serve)",
		func(c *Config) string { return c.Role }, func(c *Config, v string) error { c.Role = v; return nil }},
	{"kafka-brokers", "kafka.brokers", "serve", "Kafka seed broker `addresses` HOST:PORT, comma-separated (roles collector and aggregator)",
		func(c *Config) string { return strings.Join(c.Kafka.Brokers, ",") },
		func(c *Config, v string) error { c.Kafka.Brokers = splitList(v); return nil }},
	{"tls-cert", "api.tls_cert", "serve", "serve the API over HTTPS with this PEM certificate `file` (with --tls-key)",
		func(c *Config) string { return c.API.TLSCert }, func(c *Config, v string) error { c.API.TLSCert = v; return nil }},
	{"tls-key", "api.tls_key", "serve", "PEM private key `file` of --tls-cert",
		func(c *Config) string { return c.API.TLSKey }, func(c *Config, v string) error { c.API.TLSKey = v; return nil }},
}

// parseFlags parses the flags of serve or import (parseConfigFlags).
func parseFlags(name string, args []string, stdout io.Writer) (Config, []string, error) {
	return parseConfigFlags(newFlagSet(name), name, args, stdout)
}

// parseConfigFlags adds the configuration flags of the command to fs (which
// may hold the command's own), reads the config file named by --config, lets
// the flags that were given override it, and checks the result.
func parseConfigFlags(fs *flag.FlagSet, name string, args []string, stdout io.Writer) (Config, []string, error) {
	cfg := defaultConfig()
	configPath := fs.String("config", "", "YAML configuration `file`")
	values := map[string]*string{}
	for _, f := range configFlags {
		if strings.Contains(" "+f.commands+" ", " "+name+" ") {
			values[f.name] = fs.String(f.name, f.value(&cfg), f.usage)
		}
	}
	if err := parseArgs(fs, args, stdout); err != nil {
		return cfg, nil, err
	}
	src := configSource{cmd: name, path: *configPath, flags: map[string]string{}}
	if *configPath != "" {
		doc, err := loadConfig(*configPath, &cfg)
		if err != nil {
			return cfg, nil, err
		}
		src.doc = doc
	}
	var err error
	fs.Visit(func(fl *flag.Flag) {
		for _, f := range configFlags {
			if _, ok := values[f.name]; ok && f.name == fl.Name && err == nil {
				if serr := f.set(&cfg, *values[f.name]); serr != nil {
					err = usagef(name, "--%s: %v", f.name, serr)
				}
				src.flags[f.key] = "--" + f.name
			}
		}
	})
	if err == nil {
		err = cfg.check(src, name == "serve")
	}
	return cfg, fs.Args(), err
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func serve(cfg Config, args []string) error {
	logger := newLogger(cfg.LogLevel)
	slog.SetDefault(logger)
	applyMemoryLimit(cfg, logger)
	p, err := newPipeline(cfg, logger, time.Now)
	if err != nil {
		return err
	}
	p.reloadArgs, p.config = args, cfg
	// Catch the signals before saying "started": a SIGTERM right after that
	// line must flush, not kill the process.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := p.startServe(cfg); err != nil {
		p.stop()
		return err
	}
	logger.Info("tmsd started", "netflow", p.netflowAddrs(), "sflow", p.sflowAddrs(), "http", p.api.Addr().String(), "data", cfg.Data)
	var s os.Signal
	for s == nil {
		select {
		case s = <-sig:
		case <-hup:
			p.reload() // logs what it did, or why it refused the file
		}
	}
	logger.Info("stopping: flushing the open minutes", "signal", s.String())
	return p.stop()
}

// applyMemoryLimit keeps the process's memory under memory_limit. Without a
// limit the heap may grow to twice what is live before a collection
// (GOGC=100): under a flood of distinct addresses, tables held within
// aggregate.max_memory (512 MiB) still took RSS to 2.3 GiB. The Go runtime's
// soft limit is set to 80% of memory_limit because the runtime keeps the heap
// near its limit once live data passes half of it, and RSS adds the binary,
// thread stacks, not yet returned pages and the store's files, which Badger
// maps and writes through the mapping: with the soft limit at 1 GiB, a
// 1M-address flood measured 1,074 MiB of runtime memory and 1,133 MiB RSS;
// at 85 %, a 10M-address flood 780–800 MiB anonymous and ~250 MiB of mapped
// files, 1,051–1,055 MiB in all. GOMEMLIMIT in the environment, when set, wins.
func applyMemoryLimit(cfg Config, logger *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		logger.Info("memory_limit not applied: GOMEMLIMIT is set", "GOMEMLIMIT", v)
		return
	}
	if cfg.MemoryLimit <= 0 {
		return
	}
	soft := int64(cfg.MemoryLimit) / 100 * 80
	if int64(cfg.Aggregate.MaxMemory) > soft*2/3 {
		logger.Warn("aggregate.max_memory leaves little room under memory_limit: the garbage collector will run often",
			"memory_limit", int64(cfg.MemoryLimit), "max_memory", int64(cfg.Aggregate.MaxMemory))
	}
	debug.SetMemoryLimit(soft)
}
