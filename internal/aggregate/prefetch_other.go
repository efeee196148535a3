//go:build !amd64

package aggregate

func prefetch(uintptr) {}
