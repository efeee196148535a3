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
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/tmsd/tmsd/api"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "tmsd:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, _, err := parseFlags("serve", args, stderr)
		if err != nil {
			return err
		}
		return serve(cfg)
	case "import":
		cfg, files, err := parseFlags("import", args, stderr)
		if err != nil {
			return err
		}
		if len(files) == 0 {
			return errors.New("import: name at least one pcap file")
		}
		return importFiles(cfg, files, stdout)
	case "token":
		return tokenCommand(args, stdout, stderr)
	case "top", "report":
		return clientCommand(cmd, args, cliEnv{stdout: stdout, stderr: stderr, getenv: os.Getenv, client: &http.Client{}})
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: tmsd [serve] [flags] | tmsd import [flags] FILE.pcap… | tmsd token [--admin]\n"+
			"       tmsd top --by DIM [--last 1h] [--n 10] [--csv] … | tmsd report --by DIM [--step 5m] [--compare 7d] …")
		return nil
	}
	return fmt.Errorf("unknown command %q (serve, import, token, top or report)", cmd)
}

// parseFlags reads the config file named by --config, then lets the flags
// that were given override it.
func parseFlags(name string, args []string, stderr io.Writer) (Config, []string, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("tmsd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration `file`")
	netflow := fs.String("netflow", strings.Join(cfg.NetFlow, ","), "NetFlow v5/v9 and IPFIX listen `addresses`, comma-separated")
	sflow := fs.String("sflow", strings.Join(cfg.SFlow, ","), "sFlow v5 listen `address`")
	httpAddr := fs.String("http", cfg.HTTP, "REST API and dashboard listen `address`")
	data := fs.String("data", cfg.Data, "data `directory`")
	retention := fs.String("retention", "14d", "how long minute data is kept (`duration`: 90m, 36h, 14d)")
	tlsCert := fs.String("tls-cert", "", "serve the API over HTTPS with this PEM certificate `file` (with --tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM private key `file` of --tls-cert")
	if err := fs.Parse(args); err != nil {
		return cfg, nil, err
	}
	if *configPath != "" {
		if err := loadConfig(*configPath, &cfg); err != nil {
			return cfg, nil, err
		}
	}
	var err error
	retentionFlag := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "netflow":
			cfg.NetFlow = splitList(*netflow)
		case "sflow":
			cfg.SFlow = splitList(*sflow)
		case "http":
			cfg.HTTP = *httpAddr
		case "data":
			cfg.Data = *data
		case "retention":
			d, perr := api.ParseDuration(*retention)
			if perr != nil || d <= 0 {
				err = fmt.Errorf("--retention: %q is not a duration such as 90m, 36h or 14d", *retention)
			}
			cfg.Retention.Minute, retentionFlag = Duration(d), true
		case "tls-cert":
			cfg.API.TLSCert = *tlsCert
		case "tls-key":
			cfg.API.TLSKey = *tlsKey
		}
	})
	if err == nil && (cfg.API.TLSCert == "") != (cfg.API.TLSKey == "") {
		err = errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	if err == nil {
		err = cfg.checkTiers(*configPath, name == "serve", retentionFlag)
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

func serve(cfg Config) error {
	logger := newLogger(cfg.LogLevel)
	slog.SetDefault(logger)
	applyMemoryLimit(cfg, logger)
	p, err := newPipeline(cfg, logger, time.Now)
	if err != nil {
		return err
	}
	// Catch the signals before saying "started": a SIGTERM right after that
	// line must flush, not kill the process.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	if err := p.startServe(cfg); err != nil {
		p.stop()
		return err
	}
	logger.Info("tmsd started", "netflow", p.netflowAddrs(), "sflow", p.sflowAddrs(), "http", p.api.Addr().String(), "data", cfg.Data)
	s := <-sig
	logger.Info("stopping: flushing the open minutes", "signal", s.String())
	return p.stop()
}

// applyMemoryLimit keeps the process's memory under memory_limit. Without a
// limit the heap may grow to twice what is live before a collection
// (GOGC=100): under a flood of distinct addresses, tables held within
// aggregate.max_memory (512 MiB) still took RSS to 2.3 GiB. The Go runtime's
// soft limit is set to 85% of memory_limit because the runtime keeps the heap
// near its limit once live data passes half of it, and RSS adds the binary,
// thread stacks and not yet returned pages: with the soft limit at 1 GiB, a
// 1M-address flood measured 1,074 MiB of runtime memory and 1,133 MiB RSS.
// GOMEMLIMIT in the environment, when set, wins.
func applyMemoryLimit(cfg Config, logger *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		logger.Info("memory_limit not applied: GOMEMLIMIT is set", "GOMEMLIMIT", v)
		return
	}
	if cfg.MemoryLimit <= 0 {
		return
	}
	soft := int64(cfg.MemoryLimit) / 100 * 85
	if int64(cfg.Aggregate.MaxMemory) > soft*2/3 {
		logger.Warn("aggregate.max_memory leaves little room under memory_limit: the garbage collector will run often",
			"memory_limit", int64(cfg.MemoryLimit), "max_memory", int64(cfg.Aggregate.MaxMemory))
	}
	debug.SetMemoryLimit(soft)
}
