// Package geoip owns the countries and AS numbers of flow ends, from MaxMind DB files
// (MaxMind, DB-IP, IPinfo, ip-location-db) or the database built into tmsd; special ranges are named, not looked up.
// Each database is flattened at load into sorted range arrays (lock- and allocation-free to search), swapped atomically when its file changes.
package geoip

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// Configuration of the databases.
type Configuration struct {
	// Country is the path of a country .mmdb (MaxMind GeoIP2/GeoLite2
	// Country or City, DB-IP country lite, IPinfo, ip-location-db country);
	// "" takes the embedded default (when Embedded).
	Country string
	// ASN is the path of an ASN .mmdb (GeoLite2-ASN, DB-IP ASN lite, IPinfo,
	// ip-location-db asn); "" takes the embedded default (when Embedded).
	ASN string
	// Embedded fills whichever of Country and ASN is empty from the database
	// built into tmsd. False with both empty turns enrichment off.
	Embedded bool
	// ExportAS: true, a non-zero AS the exporter sent wins over the
	// database; false, the database wins where it knows the address.
	ExportAS bool
	// ReloadInterval is how often the files are checked for replacement
	// (size, mtime, inode); 0 never.
	ReloadInterval time.Duration
}

// DefaultConfiguration is the embedded database, the exporter's AS first,
// files checked every 30 s.
func DefaultConfiguration() Configuration {
	return Configuration{Embedded: true, ExportAS: true, ReloadInterval: 30 * time.Second}
}

// Dependencies of the component.
type Dependencies struct {
	Registry *prometheus.Registry // nil: metrics not registered
	Logger   *slog.Logger         // nil: slog.Default()
}

// DatabaseInfo describes a loaded database, for the API.
type DatabaseInfo struct {
	Database  string    `json:"database"` // "country" or "asn": what tmsd takes from it
	Path      string    `json:"path"`     // the file, or "embedded"
	Type      string    `json:"type"`     // the file's database_type
	Format    string    `json:"format"`   // how it is read: maxmind, ipinfo, ip-location-db, tmsd, generic
	BuildTime time.Time `json:"build_time"`
	Networks  int       `json:"networks"` // networks in the file
	Ranges    int       `json:"ranges"`   // address ranges once flattened, IPv4 and IPv6
	Source    string    `json:"source,omitempty"`
	License   string    `json:"license,omitempty"` // known for the embedded database only
	LoadedAt  time.Time `json:"loaded_at"`
	LoadTime  float64   `json:"load_seconds"` // reading, decompressing and flattening
}

// The two databases, by the label of their metrics.
const (
	roleCountry = "country"
	roleASN     = "asn"
)

// GeoIP answers countries and ASes. Its methods are safe for concurrent
// use, and on a nil *GeoIP (which answers nothing).
type GeoIP struct {
	cfg    Configuration
	logger *slog.Logger
	cur    atomic.Pointer[state]

	mu    sync.Mutex // roles, in Start and the reloads
	roles [2]*role

	started  bool
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}

	reloads, reloadErrors *prometheus.CounterVec
}

// state is what Enrich reads, swapped whole.
type state struct {
	t        *table
	cache    *cache
	cache6   *cache6
	exportAS bool
	country  *database // nil: none loaded
	asn      *database
	infos    []DatabaseInfo
}

// role is one of the two databases and its file.
type role struct {
	name    string
	path    string // "": the embedded one, if configured
	db      *database
	info    DatabaseInfo
	stat    fileStat // of the file loaded
	failed  fileStat // of the last version that failed to load: not tried again
	lastErr string   // the last stat or read error logged: not logged again
}

// New validates the configuration; it opens nothing.
func New(cfg Configuration, deps Dependencies) (*GeoIP, error) {
	if cfg.ReloadInterval < 0 {
		return nil, fmt.Errorf("geoip: reload interval %v is negative", cfg.ReloadInterval)
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	g := &GeoIP{
		cfg:    cfg,
		logger: deps.Logger.With("component", "geoip"),
		roles:  [2]*role{{name: roleCountry, path: cfg.Country}, {name: roleASN, path: cfg.ASN}},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tmsd_geoip_reloads_total",
			Help: "GeoIP database files loaded again after they changed, by database (country, asn)."}, []string{"database"}),
		reloadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tmsd_geoip_reload_errors_total",
			Help: "GeoIP database files that changed but could not be read or parsed, by database (country, asn); the database loaded before stays."}, []string{"database"}),
	}
	for _, r := range g.roles {
		g.reloads.WithLabelValues(r.name)
		g.reloadErrors.WithLabelValues(r.name)
	}
	if deps.Registry != nil {
		if err := errors.Join(deps.Registry.Register(g.reloads), deps.Registry.Register(g.reloadErrors)); err != nil {
			return nil, fmt.Errorf("geoip: %w", err)
		}
	}
	return g, nil
}

// off says that no database is configured.
func (g *GeoIP) off() bool { return g.cfg.Country == "" && g.cfg.ASN == "" && !g.cfg.Embedded }

// embeddedDB is the embedded database, decompressed and flattened once per
// process: it never changes, and each load takes ~0.7 s and ~160 MB of
// garbage (cmd/tmsd's tests start dozens of pipelines).
var embeddedDB = sync.OnceValues(func() (*database, error) {
	data, err := embedded()
	if err != nil {
		return nil, err
	}
	return load(data)
})

// Start loads the databases and starts watching the files. A file that
// cannot be read or parsed, or that lacks what it is configured for (a
// country database without countries), is an error.
func (g *GeoIP) Start() (err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return errors.New("geoip: started twice")
	}
	g.started = true
	watching := false
	defer func() {
		if !watching {
			close(g.done) // Stop has nothing to wait for
		}
	}()
	if g.off() {
		return nil
	}
	var emb *database
	var embInfo DatabaseInfo
	watch := false
	for _, r := range g.roles {
		if r.path == "" {
			if !g.cfg.Embedded {
				continue
			}
			if emb == nil {
				begin := time.Now()
				var err error
				if emb, err = embeddedDB(); err != nil {
					return fmt.Errorf("geoip: embedded database: %w", err)
				}
				embInfo = describe(emb, "embedded", begin)
				embInfo.License = embeddedLicense
			}
			r.db, r.info = emb, embInfo
			r.info.Database = r.name
			continue
		}
		watch = true
		begin := time.Now()
		st, data, err := readFile(r.path)
		var db *database
		if err == nil {
			db, err = load(data)
		}
		if err == nil {
			err = fits(r.name, db)
		}
		if err != nil {
			return fmt.Errorf("geoip: %s database %s: %w", r.name, r.path, err)
		}
		r.db, r.stat, r.info = db, st, describe(db, r.path, begin)
		r.info.Database = r.name
	}
	g.publish()
	for i, r := range g.roles {
		if r.db == nil || i > 0 && r.db == g.roles[0].db {
			continue
		}
		name := r.name
		if i == 0 && g.roles[1].db == r.db {
			name = roleCountry + "," + roleASN // the embedded one, for both
		}
		g.logger.Info("geoip database loaded", "database", name, "path", r.info.Path, "type", r.info.Type,
			"built", r.info.BuildTime.Format(time.DateOnly), "networks", r.info.Networks, "ranges", r.info.Ranges,
			"seconds", r.info.LoadTime)
	}
	if watch && g.cfg.ReloadInterval > 0 {
		watching = true
		go g.run()
	}
	return nil
}

// Stop ends the watching of the files and waits for it.
func (g *GeoIP) Stop() error {
	g.mu.Lock()
	started := g.started
	g.mu.Unlock()
	if !started {
		return nil
	}
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.done
	return nil
}

func describe(db *database, path string, begin time.Time) DatabaseInfo {
	return DatabaseInfo{Path: path, Type: db.typ, Format: db.format, BuildTime: db.built, Networks: db.networks,
		Ranges: db.t.ranges(), Source: db.desc, LoadedAt: time.Now(), LoadTime: time.Since(begin).Seconds()}
}

// fits checks that a database has what its role takes from it.
func fits(name string, db *database) error {
	switch {
	case name == roleCountry && db.countries == 0:
		return fmt.Errorf("no country in its %d networks (database type %q)", db.networks, db.typ)
	case name == roleASN && db.ases == 0:
		return fmt.Errorf("no AS number in its %d networks (database type %q)", db.networks, db.typ)
	}
	return nil
}

// publish swaps in a state made of the roles' databases; g.mu is held.
func (g *GeoIP) publish() *state {
	s := &state{exportAS: g.cfg.ExportAS, country: g.roles[0].db, asn: g.roles[1].db, cache: new(cache), cache6: new(cache6)}
	var ct, at *table
	if s.country != nil {
		ct = s.country.t
	}
	if s.asn != nil {
		at = s.asn.t
	}
	s.t = combine(ct, at)
	for _, r := range g.roles {
		if r.db != nil {
			s.infos = append(s.infos, r.info)
		}
	}
	g.cur.Store(s)
	return s
}

// run checks the files every ReloadInterval.
func (g *GeoIP) run() {
	defer close(g.done)
	t := time.NewTicker(g.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			g.check()
		}
	}
}

// check loads again the files that changed.
func (g *GeoIP) check() {
	g.mu.Lock()
	defer g.mu.Unlock()
	changed := false
	for _, r := range g.roles {
		if r.path == "" {
			continue
		}
		st, err := statFile(r.path)
		if err != nil {
			g.failed(r, err, true)
			continue
		}
		r.lastErr = ""
		if st == r.stat || st == r.failed {
			continue
		}
		begin := time.Now()
		_, data, err := readFile(r.path)
		if err != nil {
			g.failed(r, err, true)
			continue
		}
		if now, err := statFile(r.path); err != nil || now != st {
			continue // being written: the next check takes it
		}
		db, err := load(data)
		if err == nil {
			err = fits(r.name, db)
		}
		if err != nil {
			r.failed = st
			g.failed(r, err, false)
			continue
		}
		r.db, r.stat, r.failed = db, st, fileStat{}
		r.info = describe(db, r.path, begin)
		r.info.Database = r.name
		g.reloads.WithLabelValues(r.name).Inc()
		g.logger.Info("geoip database reloaded", "database", r.name, "path", r.path, "type", db.typ,
			"built", db.built.Format(time.DateOnly), "networks", db.networks, "seconds", r.info.LoadTime)
		changed = true
	}
	if changed {
		g.publish()
	}
}

// failed counts and logs a file that could not be loaded again; repeated,
// a stat or read error is logged and counted once.
func (g *GeoIP) failed(r *role, err error, repeats bool) {
	if repeats {
		if err.Error() == r.lastErr {
			return
		}
		r.lastErr = err.Error()
	}
	g.reloadErrors.WithLabelValues(r.name).Inc()
	g.logger.Error("geoip database not reloaded, the one loaded before stays", "database", r.name, "path", r.path, "error", err)
}

// Enrich fills the countries and ASes of both ends of each record. An
// address in a special range gets the range's marker and AS 0; otherwise
// the AS is the exporter's or the database's as Configuration.ExportAS says.
func (g *GeoIP) Enrich(recs []flow.Record) {
	if g == nil {
		return
	}
	s := g.cur.Load()
	if s == nil {
		return
	}
	s.enrich(recs)
}

// Lookup answers one address from the databases (the exporter's AS aside).
func (g *GeoIP) Lookup(a netip.Addr) (cc [2]byte, as uint32) {
	if g == nil || !a.IsValid() {
		return
	}
	s := g.cur.Load()
	if s == nil {
		return
	}
	fa := flow.AddrFrom(a)
	v := s.lookup(&fa)
	return v.cc(), v.as()
}

// CountryName is the English name of a country code ("South Korea"), the
// name of a special range's marker ("private"), or "" when unknown.
// Names come from the country database where it has them, otherwise from
// the CLDR (golang.org/x/text).
func (g *GeoIP) CountryName(cc [2]byte) string {
	if g == nil {
		return ""
	}
	if name, ok := topn.SpecialName(cc); ok {
		return name
	}
	if c, ok := isoCode(string(cc[:])); !ok || c != cc {
		return ""
	}
	if s := g.cur.Load(); s != nil && s.country != nil {
		if name := s.country.ccNames[cc]; name != "" {
			return name
		}
	}
	return regionName(cc)
}

// ASName is the organisation of an AS as the ASN database has it ("": unknown).
func (g *GeoIP) ASName(as uint32) string {
	if g == nil {
		return ""
	}
	if s := g.cur.Load(); s != nil && s.asn != nil {
		return s.asn.asNames[as]
	}
	return ""
}

// Info describes the databases loaded (none before Start, or when off).
func (g *GeoIP) Info() []DatabaseInfo {
	if g == nil {
		return nil
	}
	s := g.cur.Load()
	if s == nil {
		return nil
	}
	return append([]DatabaseInfo(nil), s.infos...)
}

// fileStat is what tells a replaced file.
type fileStat struct {
	size, mtime int64
	inode       uint64
}

func statFile(path string) (fileStat, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{}, unpath(err)
	}
	return statOf(fi), nil
}

// readFile reads a whole file and its stat before the reading.
func readFile(path string) (fileStat, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileStat{}, nil, unpath(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileStat{}, nil, unpath(err)
	}
	if !fi.Mode().IsRegular() {
		return fileStat{}, nil, errors.New("not a regular file")
	}
	data := make([]byte, fi.Size())
	n, err := f.ReadAt(data, 0)
	if err != nil && n != len(data) {
		return fileStat{}, nil, unpath(err)
	}
	return statOf(fi), data, nil
}

// unpath drops the path from an os error: the caller names the file.
func unpath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
