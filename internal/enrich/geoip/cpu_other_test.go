//go:build !linux

package geoip

func threadCPU() int64 { return 0 }
