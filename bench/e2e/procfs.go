package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clkTck = 100

// statFields returns the fields of /proc/PID/stat after the command name
// (field 3, the state, is index 0).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// cpuTicks is utime+stime of a process (all its threads), in clock ticks.
func cpuTicks(pid int) (uint64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64) // field 14 utime
	s, err2 := strconv.ParseUint(f[12], 10, 64) // field 15 stime
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return u + s, nil
}

// hwmKiB is VmHWM (peak resident set) of a process, in KiB.
func hwmKiB(pid int) (uint64, error) {
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// rssKiB is pid's resident memory now, anonymous and file-backed
// (RssAnon, RssFile of /proc/PID/status): tmsd's store maps its files, so
// part of its RSS is the page cache of the data directory.
func rssKiB(pid int) (anon, file uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		for name, dst := range map[string]*uint64{"RssAnon:": &anon, "RssFile:": &file} {
			if v, ok := strings.CutPrefix(line, name); ok {
				*dst, _ = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	return anon, file, nil
}

// rssPeaks samples pid's anonymous and file-backed RSS every interval until
// done is closed, and returns their peaks (VmHWM has only their sum's).
func rssPeaks(pid int, interval time.Duration, done <-chan struct{}) (peak func() (anon, file uint64)) {
	var mu sync.Mutex
	var pa, pf uint64
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if a, f, err := rssKiB(pid); err == nil {
				mu.Lock()
				pa, pf = max(pa, a), max(pf, f)
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		mu.Lock()
		defer mu.Unlock()
		return pa, pf
	}
}

// tree is pid and its live descendants (sfacctd runs its plugins as child
// processes; the other collectors are one process).
func tree(pid int) []int {
	children := map[int][]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		p, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		f, err := statFields(p)
		if err != nil {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// treeCPU sums cpuTicks over pid's process tree.
func treeCPU(pid int) uint64 {
	var sum uint64
	for _, p := range tree(pid) {
		if t, err := cpuTicks(p); err == nil {
			sum += t
		}
	}
	return sum
}

// treeHWM sums VmHWM over pid's process tree, in KiB.
func treeHWM(pid int) uint64 {
	var sum uint64
	for _, p := range tree(pid) {
		if h, err := hwmKiB(p); err == nil {
			sum += h
		}
	}
	return sum
}

// udpBound reports whether something has a UDP socket bound to 127.0.0.1:port.
func udpBound(port int) bool {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	want := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[1] == want {
			return true
		}
	}
	return false
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
