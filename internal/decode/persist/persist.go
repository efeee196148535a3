// Package persist keeps the decoder's state (templates, options sampling rates, IPFIX
// systemInitTime) in the store's metadata across restarts: Start restores it, before the
// listeners run; a goroutine saves it when its generation moved, at most every Interval; Stop saves it last.
package persist

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmsd/tmsd/internal/decode"
)

// MetaName is the store metadata name the state is saved under (docs/STORAGE.md).
const MetaName = "decode/state"

// Configuration of the persister.
type Configuration struct {
	// Interval is the shortest time between two saves. The state changes
	// when exporters send new templates, so saves are rare; what changed
	// within the last Interval is lost on a crash, not on a clean stop.
	Interval time.Duration
}

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{Interval: 5 * time.Second}
}

// Decoder is the part of *decode.Decoder the persister uses.
type Decoder interface {
	State() ([]byte, uint64)
	Generation() uint64
	Restore(blob []byte, now time.Time) (decode.RestoreStats, error)
}

// Store is the part of *store.Store the persister uses.
type Store interface {
	GetMeta(name string) ([]byte, bool, error)
	PutMeta(name string, value []byte) error
}

// Dependencies of the persister.
type Dependencies struct {
	Decoder  Decoder
	Store    Store
	Clock    func() time.Time // restore time of the templates; time.Now if nil
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Persister saves and restores the decoder's state.
type Persister struct {
	cfg    Configuration
	deps   Dependencies
	logger *slog.Logger

	saves, saveErrors prometheus.Counter
	size              prometheus.Gauge

	mu      sync.Mutex // one save at a time: the loop's and Stop's
	saved   uint64     // generation of the last save (or of the restore)
	lastLog time.Time
	started bool
	stop    chan struct{}
	done    chan struct{}
}

// New validates the configuration; it reads and writes nothing.
func New(cfg Configuration, deps Dependencies) (*Persister, error) {
	if cfg.Interval <= 0 {
		return nil, fmt.Errorf("persist: Interval %s must be positive", cfg.Interval)
	}
	if deps.Decoder == nil || deps.Store == nil {
		return nil, errors.New("persist: Decoder and Store are required")
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.Default()
	}
	p := &Persister{
		cfg:    cfg,
		deps:   deps,
		logger: logger.With("component", "decode-state"),
		saves: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tmsd_decode_state_saves_total", Help: "Saves of the decoder state (templates, sampling rates) to the store.",
		}),
		saveErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tmsd_decode_state_save_errors_total", Help: "Failed saves of the decoder state; retried at the next interval.",
		}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tmsd_decode_state_bytes", Help: "Size of the decoder state last saved or restored.",
		}),
	}
	if deps.Registry != nil {
		for _, c := range []prometheus.Collector{p.saves, p.saveErrors, p.size} {
			if err := deps.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("persist: metrics: %w", err)
			}
		}
	}
	return p, nil
}

// Start restores the saved state into the decoder, then saves changes in
// the background. A state that cannot be read (corrupt, or from a tmsd
// with another layout) is logged and left aside: the exporters' next
// template refreshes rebuild it. Only a store error fails Start.
func (p *Persister) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return errors.New("persist: already started")
	}
	blob, ok, err := p.deps.Store.GetMeta(MetaName)
	if err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	if ok {
		st, err := p.deps.Decoder.Restore(blob, p.deps.Clock())
		if err != nil {
			p.logger.Warn("decoder state not restored: templates will come with the exporters' next refresh", "error", err)
		} else {
			p.size.Set(float64(len(blob)))
			p.logger.Info("decoder state restored", "exporters", st.Exporters, "templates", st.Templates,
				"skipped", st.Skipped, "bytes", len(blob))
		}
	}
	p.saved = p.deps.Decoder.Generation()
	p.started = true
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.loop()
	return nil
}

func (p *Persister) loop() {
	defer close(p.done)
	ticker := time.NewTicker(p.cfg.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-ticker.C:
			p.mu.Lock()
			_ = p.save() // counted and logged; retried at the next tick
			p.mu.Unlock()
		}
	}
}

// Stop ends the background saves and saves what changed since the last.
func (p *Persister) Stop() error {
	p.mu.Lock()
	if !p.started {
		p.mu.Unlock()
		return nil
	}
	p.started = false
	close(p.stop)
	p.mu.Unlock()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.save()
}

// save writes the state if its generation moved since the last save. p.mu is held.
func (p *Persister) save() error {
	if p.deps.Decoder.Generation() == p.saved {
		return nil
	}
	blob, generation := p.deps.Decoder.State()
	if err := p.deps.Store.PutMeta(MetaName, blob); err != nil {
		p.saveErrors.Inc()
		if now := p.deps.Clock(); now.Sub(p.lastLog) >= time.Minute {
			p.lastLog = now
			p.logger.Error("cannot save the decoder state (further errors muted for a minute)", "error", err)
		}
		return fmt.Errorf("persist: %w", err)
	}
	p.saved = generation
	p.saves.Inc()
	p.size.Set(float64(len(blob)))
	return nil
}
