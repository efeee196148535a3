// Command flowgen is a load generator for flow collectors: it sends synthetic
// NetFlow v5/v9, IPFIX or sFlow v5 from several loopback exporters and writes
// the exact truth of what it sent. The work is in internal/flowgen; this is flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tmsd/tmsd/internal/flowgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the flags: the run's configuration and where the truth goes.
type options struct {
	cfg   flowgen.Config
	truth string
}

func parse(args []string, stderr io.Writer) (*options, error) {
	var (
		o         options
		ports     string
		sources   string
		templates string
	)
	fs := flag.NewFlagSet("flowgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `flowgen sends synthetic flow exports over UDP and writes the truth of what it sent.

usage: flowgen -format v5|v9|ipfix|sflow -target 127.0.0.1:2055 (-count N | -duration D) [flags]

It stops at whichever of -count and -duration comes first (at most %s).
Exporters send from 127.0.0.2, 127.0.0.3... (-sources to change), each its
own observation domain. Bytes and packets in the truth are multiplied by
-sampling, as a collector should report them.

Profiles (-profile): backbone (default) draws sources Zipf from 100,000
addresses and destinations from 10,000 others, %d services (443/tcp, 80/tcp,
443/udp, 53/udp...) with client ports in %d..%d, %d interfaces a side,
resends templates every 100 data datagrams per exporter, and rotates client
ports on every send, so no tuple comes back within a minute (-tuple-repeat N:
N sends per tuple, e.g. 11 for sFlow samples as an unsampled capture repeats
them). pool is the workload of flowgen before it (%d services, one pool of
hosts for both ends, templates every 1s, each pre-built datagram re-sent
unchanged), kept to reproduce old figures. Flags left at 0 or empty take the
profile's value.

`, flowgen.MaxDuration, len(flowgen.DefaultPorts), flowgen.EphemeralLo, flowgen.EphemeralHi-1, flowgen.Interfaces, len(flowgen.PoolPorts))
		fs.PrintDefaults()
	}
	c := &o.cfg
	fs.StringVar(&c.Format, "format", "", "export format: v5, v9, ipfix or sflow")
	fs.StringVar(&c.Target, "target", "127.0.0.1:2055", "collector address")
	fs.Float64Var(&c.Rate, "rate", 0, "flows (sFlow: samples) per second, all exporters together; 0 = flat out")
	fs.Uint64Var(&c.Count, "count", 0, "flows to send (0 = until -duration)")
	fs.DurationVar(&c.Duration, "duration", 0, "how long to send (0 = until -count, at most 10m)")
	fs.IntVar(&c.Exporters, "exporters", 4, "exporters, each from its own source address")
	fs.Uint64Var(&c.Seed, "seed", 1, "random seed: same seed, same traffic")
	fs.StringVar(&c.Profile, "profile", flowgen.ProfileBackbone, "workload: backbone or pool (see above)")
	fs.IntVar(&c.Hosts, "hosts", 0, "source addresses; pool profile: the hosts of both ends (0 = 100000)")
	fs.IntVar(&c.DstHosts, "dst-hosts", 0, "destination addresses, a pool of their own (0 = backbone: 10000; the pool profile has none)")
	fs.Float64Var(&c.Zipf, "zipf", 1.1, "Zipf exponent of host and service popularity")
	fs.StringVar(&ports, "ports", "", "services PORT/PROTO, comma-separated, most popular first (empty = the profile's)")
	fs.IntVar(&c.TupleRepeat, "tuple-repeat", 0, "backbone: sends of a record per client port before it rotates (0 = 1: every send a new tuple)")
	samp := fs.Uint("sampling", 1, "sampling rate announced in the export")
	fs.IntVar(&c.Batch, "batch", 64, "datagrams per sendmmsg")
	fs.StringVar(&templates, "templates-every", "", "v9/IPFIX templates resent every N data datagrams per exporter (a number) or every D (a duration); negative: only at the start (empty = backbone: 100; pool: 1s)")
	fs.Uint64Var(&c.Spread, "spread", 0, "give flows from all but the -spread-keep most popular sources a fresh source address per send, cycling through this many (0 = off)")
	fs.IntVar(&c.SpreadKeep, "spread-keep", 0, "most popular source hosts that keep their address under -spread (0 = 100)")
	fs.IntVar(&c.Pool, "pool", 0, "distinct pre-built datagrams per exporter (0 = 2048, fewer with over 16 exporters)")
	fs.StringVar(&sources, "sources", "", "comma-separated exporter source addresses (default 127.0.0.2...)")
	fs.StringVar(&o.truth, "truth", "", "write the truth as JSON to this file (- for stdout); without it, a summary goes to stdout")
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err} // the flag package has said what is wrong
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *samp == 0 || *samp > 1<<32-1 {
		return nil, fmt.Errorf("-sampling %d: want 1..%d", *samp, uint32(1<<32-1))
	}
	c.Sampling = uint32(*samp)
	if templates != "" {
		if n, err := strconv.Atoi(templates); err == nil {
			c.TemplatesEveryDatagrams = n
			if n == 0 {
				return nil, errors.New("-templates-every 0: want N datagrams, a duration, or negative for only at the start")
			}
		} else if d, err := time.ParseDuration(templates); err == nil && d != 0 {
			c.TemplatesEvery = d
		} else {
			return nil, fmt.Errorf("-templates-every %q: want a number of datagrams or a duration", templates)
		}
	}
	if c.Zipf == 0 {
		// Config takes 0 as "the default"; an exponent this small is uniform.
		c.Zipf = math.SmallestNonzeroFloat64
	}
	for p := range strings.SplitSeq(ports, ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.Ports = append(c.Ports, p)
		}
	}
	for s := range strings.SplitSeq(sources, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("-sources: %w", err)
		}
		c.Sources = append(c.Sources, a)
	}
	if len(c.Sources) > 0 && !flagSet(fs, "exporters") {
		c.Exporters = len(c.Sources)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &o, nil
}

// usageError is a flag parsing error, already reported by the flag package.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var usage usageError
	if errors.As(err, &usage) {
		return 2
	}
	if err != nil {
		printError(stderr, err)
		return 2
	}
	t, err := flowgen.Run(ctx, o.cfg)
	if t != nil {
		tuples := ""
		if t.Tuples != nil {
			tuples = fmt.Sprintf(", %.2f flows per distinct tuple and minute", t.Tuples.FlowsPerTuple)
		}
		fmt.Fprintf(stderr, "flowgen: %s to %s: %d datagrams, %d flows in %.3fs, %.0f flows/s (profile %s%s)\n",
			t.Format, o.cfg.Target, t.Sent.Datagrams, t.Sent.Flows, t.ElapsedS, t.RateFlowsPerS, t.Workload.Profile, tuples)
		if werr := output(t, o.truth, stdout); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if err != nil {
		printError(stderr, err)
		return 1
	}
	return 0
}

func printError(w io.Writer, err error) {
	msg := err.Error()
	if !strings.HasPrefix(msg, "flowgen:") {
		msg = "flowgen: " + msg
	}
	fmt.Fprintln(w, msg)
}

// output writes the truth to path, or its summary (no top lists) to stdout.
func output(t *flowgen.Truth, path string, stdout io.Writer) error {
	if path != "" {
		return t.WriteJSON(path)
	}
	summary := *t
	summary.Top = nil
	b, err := json.MarshalIndent(&summary, "", " ")
	if err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}
