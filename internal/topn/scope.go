package topn

import (
	"fmt"
	"strconv"

	"github.com/tmsd/tmsd/internal/flow"
)

// ScopeKind says which slice of the traffic a table covers.
type ScopeKind uint8

// Scope kinds. The numbers are stored in keys: never renumber, only append.
// Later scopes (interface+direction, drill-downs) are appended here.
const (
	ScopeAll      ScopeKind = iota // the whole network
	ScopeExporter                  // one exporter's flows
	ScopeProto                     // one IP protocol's flows
)

// Scope selects the traffic a table covers. Only the field of its Kind is set.
type Scope struct {
	Kind     ScopeKind
	Exporter flow.Addr
	Proto    uint8
}

// Bytes encodes the scope for a storage key: the kind, then its fields.
func (s Scope) Bytes() []byte {
	switch s.Kind {
	case ScopeExporter:
		return append([]byte{byte(s.Kind)}, s.Exporter[:]...)
	case ScopeProto:
		return []byte{byte(s.Kind), s.Proto}
	}
	return []byte{byte(ScopeAll)}
}

// ParseScopeBytes is the inverse of Bytes; it returns the scope and the bytes used.
func ParseScopeBytes(b []byte) (Scope, int, error) {
	if len(b) == 0 {
		return Scope{}, 0, fmt.Errorf("empty scope")
	}
	switch ScopeKind(b[0]) {
	case ScopeAll:
		return Scope{}, 1, nil
	case ScopeExporter:
		if len(b) < 17 {
			return Scope{}, 0, fmt.Errorf("short exporter scope")
		}
		s := Scope{Kind: ScopeExporter}
		copy(s.Exporter[:], b[1:17])
		return s, 17, nil
	case ScopeProto:
		if len(b) < 2 {
			return Scope{}, 0, fmt.Errorf("short proto scope")
		}
		return Scope{Kind: ScopeProto, Proto: b[1]}, 2, nil
	}
	return Scope{}, 0, fmt.Errorf("unknown scope kind %d", b[0])
}

func (s Scope) String() string {
	switch s.Kind {
	case ScopeExporter:
		return "exporter=" + s.Exporter.String()
	case ScopeProto:
		return "proto=" + strconv.Itoa(int(s.Proto))
	}
	return "all"
}
