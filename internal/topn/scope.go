package topn

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/tmsd/tmsd/internal/flow"
)

// ScopeKind says which slice of the traffic a table covers.
type ScopeKind uint8

// Scope kinds. The numbers are stored in keys: never renumber, only append.
const (
	ScopeAll       ScopeKind = iota // the whole network
	ScopeExporter                   // one exporter's flows
	ScopeProto                      // one IP protocol's flows
	ScopeInterface                  // one exporter interface, one direction
	ScopeApp                        // drill-down: one application's flows
	ScopeIP                         // drill-down: the flows of one address, either end
	numScopeKinds
)

// Direction is which of a flow's interfaces an interface scope matches.
type Direction uint8

// Directions. Zero is no direction, so a Scope cannot name one by accident.
const (
	DirIn  Direction = 1 // the flow's input interface
	DirOut Direction = 2 // the flow's output interface
)

func (d Direction) String() string {
	switch d {
	case DirIn:
		return "in"
	case DirOut:
		return "out"
	}
	return "dir(" + strconv.Itoa(int(d)) + ")"
}

// Scope selects the traffic a table covers. Only the fields of its Kind are set,
// so scopes compare with ==.
type Scope struct {
	Kind     ScopeKind
	Exporter flow.Addr // ScopeExporter, ScopeInterface
	Proto    uint8     // ScopeProto
	IfIndex  uint32    // ScopeInterface
	Dir      Direction // ScopeInterface
	App      Key       // ScopeApp: an AppKey
	IP       flow.Addr // ScopeIP
}

// scopeDims are the dimensions each kind stores tables for. The whole-network,
// exporter and protocol scopes keep every dimension but peer. An interface
// scope drops what is constant in it (its exporter, and its own interface) but
// keeps the other side's interface: where the inbound traffic goes out. The
// drill-downs keep what their question needs: an application's hosts and
// ports; an address's applications and the hosts at the other end (peer).
var scopeDims = [numScopeKinds][]Dim{
	ScopeAll:       {DimApp, DimProto, DimSrcIP, DimDstIP, DimIP, DimSrcPort, DimDstPort, DimPort, DimExporter, DimInIf, DimOutIf, DimSrcCountry, DimDstCountry, DimCountry, DimSrcAS, DimDstAS, DimAS, DimAppGroup},
	ScopeExporter:  {DimApp, DimProto, DimSrcIP, DimDstIP, DimIP, DimSrcPort, DimDstPort, DimPort, DimExporter, DimInIf, DimOutIf, DimSrcCountry, DimDstCountry, DimCountry, DimSrcAS, DimDstAS, DimAS, DimAppGroup},
	ScopeProto:     {DimApp, DimProto, DimSrcIP, DimDstIP, DimIP, DimSrcPort, DimDstPort, DimPort, DimExporter, DimInIf, DimOutIf, DimSrcCountry, DimDstCountry, DimCountry, DimSrcAS, DimDstAS, DimAS, DimAppGroup},
	ScopeInterface: {DimApp, DimProto, DimSrcIP, DimDstIP, DimIP, DimSrcPort, DimDstPort, DimPort, DimInIf, DimOutIf, DimSrcCountry, DimDstCountry, DimCountry, DimSrcAS, DimDstAS, DimAS, DimAppGroup},
	ScopeApp:       {DimSrcIP, DimDstIP, DimIP, DimSrcPort, DimDstPort, DimPort},
	ScopeIP:        {DimApp, DimPeer},
}

// Dims lists the dimensions the scope has tables for.
func (s Scope) Dims() []Dim {
	if s.Kind >= numScopeKinds {
		return nil
	}
	dims := scopeDims[s.Kind]
	if s.Kind == ScopeInterface {
		// Its own interface is one row, the scope's total: not worth a table.
		own := DimInIf
		if s.Dir == DirOut {
			own = DimOutIf
		}
		out := make([]Dim, 0, len(dims)-1)
		for _, d := range dims {
			if d != own {
				out = append(out, d)
			}
		}
		return out
	}
	return dims
}

// Has reports whether the scope has a table of dimension d.
func (s Scope) Has(d Dim) bool {
	for _, x := range s.Dims() {
		if x == d {
			return true
		}
	}
	return false
}

// IsDrillDown reports whether the scope is a drill-down, kept only for the
// top keys of each minute: a range may lack it for some minutes.
func (s Scope) IsDrillDown() bool { return s.Kind == ScopeApp || s.Kind == ScopeIP }

// Bytes encodes the scope for a storage key: the kind, then its fields, in a
// length the kind (and, for an application, its length byte) fixes.
func (s Scope) Bytes() []byte {
	switch s.Kind {
	case ScopeExporter:
		return append([]byte{byte(s.Kind)}, s.Exporter[:]...)
	case ScopeProto:
		return []byte{byte(s.Kind), s.Proto}
	case ScopeInterface:
		b := append([]byte{byte(s.Kind)}, s.Exporter[:]...)
		b = binary.BigEndian.AppendUint32(b, s.IfIndex)
		return append(b, byte(s.Dir))
	case ScopeApp:
		name := s.App.App()
		return append([]byte{byte(s.Kind), byte(len(name))}, name...)
	case ScopeIP:
		return append([]byte{byte(s.Kind)}, s.IP[:]...)
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
	case ScopeInterface:
		if len(b) < 22 {
			return Scope{}, 0, fmt.Errorf("short interface scope")
		}
		s := Scope{Kind: ScopeInterface, IfIndex: binary.BigEndian.Uint32(b[17:21]), Dir: Direction(b[21])}
		copy(s.Exporter[:], b[1:17])
		if s.Dir != DirIn && s.Dir != DirOut {
			return Scope{}, 0, fmt.Errorf("interface scope with direction %d", b[21])
		}
		return s, 22, nil
	case ScopeApp:
		if len(b) < 2 || int(b[1]) > MaxAppName || len(b) < 2+int(b[1]) {
			return Scope{}, 0, fmt.Errorf("short or oversized application scope")
		}
		n := int(b[1])
		s := Scope{Kind: ScopeApp}
		copy(s.App[:], b[2:2+n])
		if n == 0 || s.App.App() != string(b[2:2+n]) {
			// A name with a zero byte would not round-trip through App().
			return Scope{}, 0, fmt.Errorf("bad application name in scope")
		}
		return s, 2 + n, nil
	case ScopeIP:
		if len(b) < 17 {
			return Scope{}, 0, fmt.Errorf("short ip scope")
		}
		s := Scope{Kind: ScopeIP}
		copy(s.IP[:], b[1:17])
		return s, 17, nil
	}
	return Scope{}, 0, fmt.Errorf("unknown scope kind %d", b[0])
}

func (s Scope) String() string {
	switch s.Kind {
	case ScopeExporter:
		return "exporter=" + s.Exporter.String()
	case ScopeProto:
		return "proto=" + strconv.Itoa(int(s.Proto))
	case ScopeInterface:
		return "if=" + s.Exporter.String() + ":" + strconv.FormatUint(uint64(s.IfIndex), 10) + " dir=" + s.Dir.String()
	case ScopeApp:
		return "app=" + s.App.App()
	case ScopeIP:
		return "ip=" + s.IP.String()
	}
	return "all"
}
