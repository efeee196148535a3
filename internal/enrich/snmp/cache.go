package snmp

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// cachePrefix starts the cache names: cachePrefix + exporter address.
const cachePrefix = "snmp/"

// cacheVersion is the entry format's; an entry of another version is skipped
// (and rewritten at the next good poll). JSON: a few KB per exporter, written
// once per Refresh, readable with any tool when names look wrong.
const cacheVersion = 1

type cacheEntry struct {
	Version     int          `json:"v"`
	SysName     string       `json:"sysName,omitempty"`
	LastSuccess time.Time    `json:"lastSuccess"`
	Interfaces  []cacheIface `json:"interfaces,omitempty"`
}

type cacheIface struct {
	Index       uint32 `json:"i"`
	Name        string `json:"n,omitempty"`
	Description string `json:"d,omitempty"`
	SpeedMbps   uint64 `json:"s,omitempty"`
}

func encodeEntry(s *snapshot) ([]byte, error) {
	e := cacheEntry{Version: cacheVersion, SysName: s.sysName, LastSuccess: s.lastSuccess.UTC(),
		Interfaces: make([]cacheIface, 0, len(s.ifaces))}
	for idx, i := range s.ifaces {
		e.Interfaces = append(e.Interfaces, cacheIface{Index: idx, Name: i.Name, Description: i.Description, SpeedMbps: i.SpeedMbps})
	}
	slices.SortFunc(e.Interfaces, func(a, b cacheIface) int { return cmp.Compare(a.Index, b.Index) })
	return json.Marshal(e)
}

func decodeEntry(b []byte) (*snapshot, error) {
	var e cacheEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	if e.Version != cacheVersion {
		return nil, fmt.Errorf("version %d, not %d", e.Version, cacheVersion)
	}
	s := &snapshot{sysName: e.SysName, lastSuccess: e.LastSuccess, ifaces: make(map[uint32]Interface, len(e.Interfaces))}
	for _, i := range e.Interfaces {
		s.ifaces[i.Index] = Interface{Name: i.Name, Description: i.Description, SpeedMbps: i.SpeedMbps}
	}
	return s, nil
}

// load reads the cached exporters as dormant ones: their names serve at once,
// they are polled when they send flows again (due Refresh after their last
// good poll) and forgotten after Expire if they do not. An entry older than
// Expire is skipped: its exporter had stopped sending before the restart.
func (p *Poller) load() error {
	if p.deps.Cache == nil {
		return nil
	}
	now := p.deps.Clock()
	m := map[key]*exporter{}
	skipped := 0
	err := p.deps.Cache.Metas(cachePrefix, func(name string, value []byte) error {
		addr, err := netip.ParseAddr(strings.TrimPrefix(name, cachePrefix))
		if err != nil || addr != addr.Unmap() {
			skipped++
			return nil
		}
		if p.cfg.OnlyListed {
			if _, ok := p.targets[addr]; !ok {
				return nil // no longer listed
			}
		}
		s, err := decodeEntry(value)
		if err != nil {
			skipped++
			return nil
		}
		if now.Sub(s.lastSuccess) >= p.cfg.Expire {
			return nil
		}
		e := &exporter{target: p.targetOf(addr), next: s.lastSuccess.Add(p.cfg.Refresh), lastSeen: now}
		e.active.Store(dormant)
		e.state.Store(s)
		m[addr.As16()] = e
		return nil
	})
	if err != nil {
		p.metrics.cacheErrors.Inc()
		return fmt.Errorf("%w: load: %w", ErrCache, err)
	}
	if skipped > 0 {
		p.logger.Warn("skipped unreadable SNMP cache entries; they are rewritten at the next good poll", "entries", skipped)
	}
	p.exporters.Store(&m)
	return nil
}

// store persists an exporter's good poll. A failing cache is logged once per
// streak of failures: it costs names at restart only.
func (p *Poller) store(exporter netip.Addr, s *snapshot) {
	if p.deps.Cache == nil {
		return
	}
	b, err := encodeEntry(s)
	if err == nil {
		err = p.deps.Cache.PutMeta(cachePrefix+exporter.String(), b)
	}
	if err != nil {
		p.metrics.cacheErrors.Inc()
		if !p.cacheFailing.Swap(true) {
			p.logger.Warn("cannot write the SNMP names cache; names will be polled again after a restart",
				"exporter", exporter, "error", fmt.Errorf("%w: %w", ErrCache, err))
		}
		return
	}
	if p.cacheFailing.Swap(false) {
		p.logger.Info("the SNMP names cache is written again")
	}
}
