package decode

import "net/netip"

// Forget drops all the decoder knows of the exporter at addr: templates,
// sampling rates, interface counters and statistics, as after a router was
// replaced or re-addressed. It reports whether the exporter was known. A
// datagram being decoded concurrently finishes against the forgotten state;
// the next one from addr starts afresh.
func (d *Decoder) Forget(addr netip.Addr) bool {
	addr = addr.Unmap()
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.exporters[addr]
	delete(d.exporters, addr)
	if ok {
		// Its templates must not come back from the saved state at the next start.
		d.generation.Add(1)
	}
	return ok
}
