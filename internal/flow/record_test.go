package flow

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func TestAddrRoundTrip(t *testing.T) {
	f := func(in string, want4 bool) {
		t.Helper()
		a := AddrFrom(netip.MustParseAddr(in))
		require.Equal(t, want4, a.Is4(), in)
		require.Equal(t, in, a.String())
	}
	f("10.1.2.3", true)
	f("2001:db8::1", false)
	b, ok := AddrFromSlice([]byte{192, 0, 2, 1})
	require.True(t, ok)
	require.Equal(t, "192.0.2.1", b.String())
	_, ok = AddrFromSlice([]byte{1, 2, 3})
	require.False(t, ok)
}

// The record is copied by value through the ring: keep it small and pointer-free.
func TestRecordIsCompact(t *testing.T) {
	require.LessOrEqual(t, unsafe.Sizeof(Record{}), uintptr(128))
}

// TOS took the padding byte after Export: the record's size and layout around
// it are what they were without it (128 bytes, App 2-aligned right after TOS).
func TestRecordTOSUsesPadding(t *testing.T) {
	var r Record
	require.Equal(t, uintptr(128), unsafe.Sizeof(r))
	require.Equal(t, unsafe.Offsetof(r.Export)+1, unsafe.Offsetof(r.TOS))
	require.Equal(t, unsafe.Offsetof(r.TOS)+1, unsafe.Offsetof(r.App))
}
