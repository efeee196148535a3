package decode

import (
	"bytes"
	"maps"
	"net/netip"
)

// v9ScopeInterface is the NetFlow v9 options scope type of an interface
// (RFC 3954 6.1: 1 system, 2 interface, 3 line card, 4 cache, 5 template).
const v9ScopeInterface = 2

// setInterfaceName keeps what options data names an interface
// (interfaceName 82, interfaceDescription 83): exporters resend it every few
// datagrams, so an unchanged name costs a compare, not an allocation.
// Fixed-length fields come padded with NULs (softflowd: 16 bytes).
func (e *exporter) setInterfaceName(ifIndex uint32, name, desc []byte) {
	name, desc = trimName(name), trimName(desc)
	old, ok := e.ifNames[ifIndex]
	if ok && old[0] == string(name) && old[1] == string(desc) {
		return
	}
	if !ok && len(e.ifNames) >= maxInterfacesPerExporter {
		return
	}
	e.ifNames[ifIndex] = [2]string{string(name), string(desc)}
}

func trimName(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return bytes.TrimSpace(b)
}

// known returns the state of a known exporter, nil for any other.
func (d *Decoder) known(addr netip.Addr) *exporter {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.exporters[addr.Unmap()]
}

// OptionsInterface is the name and description options data gave an
// exporter's interface.
func (d *Decoder) OptionsInterface(exporter netip.Addr, ifIndex uint32) (name, description string, ok bool) {
	e := d.known(exporter)
	if e == nil {
		return "", "", false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.ifNames[ifIndex]
	return v[0], v[1], ok && v[0] != ""
}

// OptionsInterfaces is every interface options data named for an exporter.
func (d *Decoder) OptionsInterfaces(exporter netip.Addr) map[uint32][2]string {
	e := d.known(exporter)
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.ifNames)
}
