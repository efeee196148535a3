package main

import (
	"errors"
	"fmt"
	"github.com/tmsd/tmsd/internal/alerts"
	"github.com/tmsd/tmsd/internal/alerts/notify"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tmsd/tmsd/api"
	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/decode"
	"github.com/tmsd/tmsd/internal/decode/listen"
	"github.com/tmsd/tmsd/internal/decode/persist"
	"github.com/tmsd/tmsd/internal/enrich/geoip"
	"github.com/tmsd/tmsd/internal/enrich/names"
	"github.com/tmsd/tmsd/internal/enrich/snmp"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/kafka"
	"github.com/tmsd/tmsd/internal/query"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/rollup"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
	"github.com/tmsd/tmsd/web"
)

// pipeline is tmsd's components, built in dependency order and stopped in reverse.
type pipeline struct {
	logger     *slog.Logger
	registry   *prometheus.Registry
	store      *store.Store
	ring       *ring.Broadcast
	decoder    *decode.Decoder
	persist    *persist.Persister // the decoder's templates across restarts; serve only
	agg        *aggregate.Aggregator
	classifier *liveClassifier // application rules, replaced by a reload
	geo        *geoip.GeoIP
	snmp       *snmp.Poller
	notify     *notify.Notifier // nil: no alerts.targets
	alerts     *alerts.Evaluator
	names      *names.Names
	// reloadArgs are serve's arguments, read again by a reload; config is
	// what they gave last (reload.go).
	reloadArgs []string
	config     Config
	reloadMu   sync.Mutex
	rollup     *rollup.Rollup
	listeners  []*listen.Listener
	offenders  *listen.Offenders // sources refused by listener.allow, shared by the listeners
	api        *api.API
	// Kafka (config_kafka.go): a collector's producer, an aggregator's consumer.
	producer *kafka.Producer
	consumer *kafka.Consumer
	started  []func() error // stop functions of started components, in start order
}

// newPipeline builds the components. Each tap wraps what the aggregator writes
// minutes and checkpoints into (`tmsd import` notes there what each capture wrote).
func newPipeline(cfg Config, logger *slog.Logger, clock func() time.Time, taps ...func(aggregate.Store) aggregate.Store) (*pipeline, error) {
	p := &pipeline{logger: logger, registry: prometheus.NewRegistry()}
	p.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	stCfg := store.DefaultConfiguration()
	stCfg.Path = cfg.Data
	stCfg.Retention[store.TierMinute] = time.Duration(cfg.Retention.Minute)
	stCfg.Retention[store.TierHour] = time.Duration(cfg.Retention.Hour)
	stCfg.Retention[store.TierDay] = time.Duration(cfg.Retention.Day)
	stCfg.MinFreeSpace = int64(cfg.Store.MinFreeSpace)
	st, err := store.New(stCfg, store.Dependencies{Registry: p.registry, Logger: logger})
	if err != nil {
		return nil, err
	}
	p.store = st
	// The rollups follow the aggregator's clock: `tmsd import` rolls up the
	// capture's hours as its time passes.
	if p.rollup, err = rollup.New(cfg.rollupConfiguration(), rollup.Dependencies{
		Store: st, Clock: clock, Registry: p.registry, Logger: logger,
	}); err != nil {
		return nil, err
	}

	rules := make([]apps.Rule, len(cfg.Apps))
	for i, r := range cfg.Apps {
		rules[i] = r.Rule
	}
	classifier, err := newLiveClassifier(rules)
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	if p.geo, err = geoip.New(cfg.GeoIP.configuration(), geoip.Dependencies{Registry: p.registry, Logger: logger}); err != nil {
		return nil, err
	}

	if p.decoder, err = decode.New(cfg.Decode.decoder(cfg.Sampling)); err != nil {
		return nil, err
	}
	if err = errors.Join(p.decoder.RegisterMetrics(p.registry), p.decoder.RegisterExporterMetrics(p.registry)); err != nil {
		return nil, err
	}
	if p.persist, err = persist.New(persist.Configuration{Interval: time.Duration(cfg.Decode.StateInterval)}, persist.Dependencies{
		Decoder: p.decoder, Store: st, Clock: clock, Registry: p.registry, Logger: logger,
	}); err != nil {
		return nil, err
	}

	aggCfg := aggregate.DefaultConfiguration()
	aggCfg.Shards = cfg.Aggregate.Shards
	aggCfg.TopK = cfg.Aggregate.TopK
	aggCfg.MaxKeys = cfg.Aggregate.MaxKeys
	aggCfg.MaxMemory = int64(cfg.Aggregate.MaxMemory)
	aggCfg.Grace = time.Duration(cfg.Aggregate.Grace)
	aggCfg.MaxAge = time.Duration(cfg.Aggregate.MaxAge)
	aggCfg.CheckpointInterval = time.Duration(cfg.Aggregate.CheckpointInterval)
	aggCfg.ScopeInterface = cfg.Aggregate.ScopeInterface
	aggCfg.DrillDowns = int(cfg.Aggregate.DrillDowns)
	// Every shard reads every record: the ring has a consumer each.
	p.ring = ring.NewBroadcast(cfg.RingSize, aggregate.Shards(aggCfg))
	p.classifier = classifier
	var minutes aggregate.Store = p.rollup.MinuteWriter()
	for _, tap := range taps {
		minutes = tap(minutes)
	}
	aggDeps := aggregate.Dependencies{Ring: p.ring, Store: minutes, Classifier: classifier, Clock: clock, Registry: p.registry, Logger: logger}
	if cfg.Role == roleAggregator {
		// Kafka holds the backlog: wait for room in the ring however long.
		// The consumer is the aggregator's Source: it commits what the
		// checkpoints hold, and has them taken before partitions move.
		sink := func(recs []flow.Record) { p.enrich(recs); pushAll(p.ring, recs) }
		if p.consumer, err = kafka.NewConsumer(cfg.Kafka.configuration(), kafka.ConsumerDependencies{
			Sink: sink, Checkpoint: func() error { return p.agg.Checkpoint() }, Registry: p.registry, Logger: logger,
		}); err != nil {
			return nil, err
		}
		aggDeps.Source = p.consumer
	}
	if p.agg, err = aggregate.New(aggCfg, aggDeps); err != nil {
		return nil, err
	}

	if p.snmp, err = snmp.New(cfg.SNMP.configuration(), snmp.Dependencies{Registry: p.registry, Logger: logger, Cache: st, Clock: clock}); err != nil {
		return nil, err
	}
	if p.names, err = names.New(cfg.namesConfiguration(), names.Dependencies{Options: p.decoder, SNMP: snmpNames{p.snmp},
		Registry: p.registry, Logger: logger, Clock: clock}); err != nil {
		return nil, err
	}

	switch cfg.Role {
	case roleCollector:
		if p.producer, err = kafka.NewProducer(cfg.Kafka.configuration(), kafka.ProducerDependencies{Registry: p.registry, Logger: logger}); err != nil {
			return nil, err
		}
	}

	engine := query.New(st, p.agg, query.WithProgress(p.rollup))
	if len(cfg.Alerts.Targets) > 0 {
		if p.notify, err = notify.New(cfg.Alerts.notifyConfiguration(), notify.Dependencies{Registry: p.registry, Logger: logger, Store: st}); err != nil {
			return nil, err
		}
	}
	// Always there, with or without rules: the API adds rules too.
	targets := map[string]bool{}
	for _, t := range cfg.Alerts.Targets {
		targets[t.Name] = true
	}
	if p.alerts, err = alerts.New(cfg.evaluatorConfiguration(), alerts.Dependencies{
		Source: engine, Store: st, Notify: p.sendAlert, Targets: func(name string) bool { return targets[name] },
		Clock: clock, Registry: p.registry, Logger: logger, DashboardURL: cfg.Alerts.DashboardURL,
		// p.api is made below, and the evaluator starts after it.
		Label: func(d topn.Dim, k topn.Key) string { return p.api.Label(d, k) },
	}); err != nil {
		return nil, err
	}

	apiCfg := api.DefaultConfiguration()
	apiCfg.Listen = cfg.HTTP
	apiCfg.Static = web.Handler()
	cfg.API.apply(&apiCfg)
	var evaluator api.Alerts = p.alerts
	if cfg.Role == roleCollector {
		apiCfg.NoTraffic = "this tmsd is a collector (role: collector): it publishes flows to Kafka topic " +
			strconv.Quote(cfg.Kafka.Topic) + " and counts none; query an aggregator"
		evaluator = nil
	}
	effective, err := effectiveConfig(cfg)
	if err != nil {
		return nil, err
	}
	p.offenders = listen.NewOffenders(listen.DefaultOffenders)
	var published api.Published
	if p.producer != nil {
		published = p.producer
	}
	if p.api, err = api.New(apiCfg, api.Dependencies{Published: published,
		Engine: engine, Exporters: p.decoder, Corrections: p.agg, Ports: classifier,
		Names: &labels{names: p.names, geo: p.geo, decoder: p.decoder}, Reloader: p, Alerts: evaluator,
		Offenders: p.offenders, Retention: st, Config: effective, Capabilities: capabilities(cfg), Registry: p.registry, Clock: clock, Logger: logger,
	}); err != nil {
		return nil, err
	}
	return p, nil
}

// startCore starts the store, the rollups and the aggregator: enough for
// `tmsd import`. The rollups load their progress before the aggregator writes,
// so a minute written into an hour already rolled up gets it rolled up again,
// and stop after its last flush.
func (p *pipeline) startCore() error {
	if err := p.store.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.store.Stop)
	if err := p.geo.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.geo.Stop)
	if err := p.rollup.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.rollup.Stop)
	if err := p.agg.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.agg.Stop)
	return nil
}

// startServe starts everything: store, aggregator, API, the decoder state
// (restored before any datagram), then the listeners. An address another
// process holds stops it before anything is opened.
func (p *pipeline) startServe(cfg Config) error {
	if err := checkAddresses(cfg); err != nil {
		return err
	}
	if cfg.Role == roleCollector {
		return p.startCollector(cfg)
	}
	if err := p.startCore(); err != nil {
		return err
	}
	if err := p.snmp.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.snmp.Stop)
	if err := p.names.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.names.Stop)
	// Targets before the rules that send to them, stopped after them; the
	// rules restored from the store before the API can change them.
	if p.notify != nil {
		if err := p.notify.Start(); err != nil {
			return err
		}
		p.started = append(p.started, p.notify.Stop)
	}
	if err := p.alerts.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.alerts.Stop)
	if err := p.api.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.api.Stop)
	if cfg.Role == roleAggregator {
		// Stopped first: it has what it pushed checkpointed and commits
		// it, then the aggregator drains the ring.
		if err := p.consumer.Start(); err != nil {
			return err
		}
		p.started = append(p.started, p.consumer.Stop)
		return nil
	}
	return p.startListeners(cfg, &ingest{decoder: p.decoder, enrich: p.enrich, ring: p.ring})
}

// startCollector starts a collector: the store (for the decoders' saved
// templates), the producer, the API (exporters, metrics), then the
// listeners, whose flows go to Kafka rather than to an aggregator.
func (p *pipeline) startCollector(cfg Config) error {
	if err := p.store.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.store.Stop)
	// After the listeners stop, it flushes what they published.
	if err := p.producer.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.producer.Stop)
	if err := p.api.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.api.Stop)
	return p.startListeners(cfg, &ingest{decoder: p.decoder, publish: p.producer.Publish})
}

// startListeners restores the decoders' state, then opens the listeners.
func (p *pipeline) startListeners(cfg Config, ingest *ingest) error {
	// Restored before the first datagram; stopped (a last save) after the listeners.
	if err := p.persist.Start(); err != nil {
		return err
	}
	p.started = append(p.started, p.persist.Stop)
	for _, l := range []struct {
		name  string
		addrs []string
	}{{"netflow", cfg.NetFlow}, {"sflow", cfg.SFlow}} {
		if len(l.addrs) == 0 {
			continue
		}
		lc := listen.DefaultConfiguration()
		lc.Addresses = l.addrs
		lc.Sockets = cfg.Listener.Sockets
		lc.ReceiveBuffer = cfg.Listener.ReceiveBuffer
		lc.BatchSize = cfg.Listener.BatchSize
		lc.Allow = allowPrefixes(cfg.Listener.Allow)
		ln, err := listen.New(lc, listen.Dependencies{Handler: ingest, Registry: p.registry, Logger: p.logger, Name: l.name,
			Offenders: p.offenders})
		if err != nil {
			return err
		}
		if err := ln.Start(); err != nil {
			return err
		}
		p.listeners = append(p.listeners, ln)
		p.started = append(p.started, ln.Stop)
	}
	return nil
}

// checkAddresses refuses the start when another process holds one of the
// UDP or HTTP addresses (listen.CheckFree), before the store is opened: a
// second tmsd would otherwise share the exporters through SO_REUSEPORT. The
// listeners check again when they bind (a process started at the same moment).
func checkAddresses(cfg Config) error {
	for _, a := range []struct {
		name, network string
		addrs         []string
	}{{"netflow", "udp", cfg.listenNetFlow()}, {"sflow", "udp", cfg.listenSFlow()}, {"http", "tcp", []string{cfg.HTTP}}} {
		for _, addr := range a.addrs {
			if addr == "" {
				continue // the listener reports it
			}
			if err := listen.CheckFree(a.name, a.network, addr); err != nil {
				return err
			}
		}
	}
	return nil
}

// sendAlert queues an alert event for its rule's targets (checkAlerts made
// sure they are configured).
func (p *pipeline) sendAlert(targets []string, ev alerts.Event) {
	if p.notify == nil || len(targets) == 0 {
		return
	}
	if err := p.notify.Send(targets, ev); err != nil {
		p.logger.Warn("alert not queued", "rule", ev.Rule, "err", err)
	}
}

// stop stops what was started, in reverse order: listeners first, then the
// decoder state (a last save), the API, the aggregator (which drains the
// ring and flushes the open minutes), the rollups, then the store.
func (p *pipeline) stop() error {
	var errs []error
	for i := len(p.started) - 1; i >= 0; i-- {
		if err := p.started[i](); err != nil {
			errs = append(errs, err)
		}
	}
	p.started = nil
	return errors.Join(errs...)
}

func addrsOf(ls []*listen.Listener, i int) []string {
	if i >= len(ls) {
		return nil
	}
	var out []string
	for _, a := range ls[i].Addrs() {
		out = append(out, a.String())
	}
	return out
}

func (p *pipeline) netflowAddrs() []string { return addrsOf(p.listeners, 0) }
func (p *pipeline) sflowAddrs() []string   { return addrsOf(p.listeners, 1) }

// ingest decodes datagrams from the listeners into the ring, classifying
// each flow's application on the way (flow.Record.App): once, on the socket
// readers, rather than in each aggregator shard.
type ingest struct {
	decoder *decode.Decoder
	enrich  func([]flow.Record)
	ring    *ring.Broadcast
	// publish, when set, takes the records instead (a collector's Kafka
	// producer; the aggregators enrich them).
	publish func([]flow.Record)
	bufs    sync.Pool
}

// ringStall is how long a socket reader waits for room in a full ring while
// no shard reads anything, before it drops (and counts) the rest of a batch:
// a shard that reads nothing for a second is stuck, not slow.
const ringStall = time.Second

// HandleBatch decodes a batch of datagrams and pushes their records; while the
// ring is full it waits for room (ring.PushBatchWait), so that the socket's
// buffer holds the backlog, and drops (and counts) only behind a stuck shard.
func (in *ingest) HandleBatch(now time.Time, batch []listen.Datagram) {
	bp, _ := in.bufs.Get().(*[]flow.Record)
	if bp == nil {
		b := make([]flow.Record, 0, 1024)
		bp = &b
	}
	recs := (*bp)[:0]
	for i := range batch {
		// Errors are counted per exporter by the decoder; the datagram is dropped alone.
		recs, _ = in.decoder.Decode(batch[i].Src.Addr(), batch[i].Payload, now, recs)
	}
	if in.publish != nil {
		in.publish(recs)
	} else {
		in.enrich(recs)
		in.ring.PushBatchWait(recs, ringStall)
	}
	*bp = recs[:0]
	in.bufs.Put(bp)
}

// enrich names the records' applications, countries and ASes, and tells
// the SNMP poller which exporters send flows: once, on the socket readers
// (or the import), rather than in each aggregator shard.
func (p *pipeline) enrich(recs []flow.Record) {
	var last flow.Addr
	for i := range recs {
		r := &recs[i]
		r.App = p.classifier.ClassifyID(r)
		if i == 0 || r.Exporter != last { // a batch is mostly one exporter's
			last = r.Exporter
			p.snmp.Seen(r.Exporter.Netip())
		}
	}
	p.geo.Enrich(recs)
}

// pushAll pushes records, waiting while the ring is full however long the
// shards take: offline import must not drop what a live socket would.
func pushAll(r *ring.Broadcast, recs []flow.Record) {
	r.PushBatchWait(recs, math.MaxInt64)
}

// capabilities are the scope filters this configuration keeps tables for, and
// the key that turns on each of the others: the dashboard offers drill-downs
// from them, and names the key where they are off.
func capabilities(cfg Config) api.Capabilities {
	c := api.Capabilities{Scopes: []string{"exporter", "proto"}, Off: map[string]string{}}
	if cfg.Aggregate.ScopeInterface {
		c.Scopes = append(c.Scopes, "if")
	} else {
		c.Off["if"] = "aggregate.scope_interface"
	}
	if cfg.Aggregate.DrillDowns > 0 {
		c.Scopes = append(c.Scopes, "app", "ip")
	} else {
		c.Off["app"], c.Off["ip"] = "aggregate.drill_downs", "aggregate.drill_downs"
	}
	return c
}
