package geoip

import "golang.org/x/sys/unix"

// threadCPU is the CPU time of the calling thread, in ns (the benchmark
// locks its goroutine to the thread): what other processes on the machine
// take is not counted, as wall time counts it.
func threadCPU() int64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
