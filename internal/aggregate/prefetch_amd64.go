package aggregate

// prefetch asks the CPU to bring the cache line at addr in, without
// waiting for it (PREFETCHT0).
//
//go:noescape
func prefetch(addr uintptr)
