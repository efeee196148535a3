package topn

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A special range is its own row in the country and AS dimensions, named
// as what it is, and parses back; it is never a country code.
func TestSpecialKeys(t *testing.T) {
	f := func(d Dim, k Key, want string) {
		t.Helper()
		require.Equal(t, want, d.Format(k))
		back, err := d.ParseKey(want)
		require.NoError(t, err)
		require.Equal(t, k, back)
	}
	f(DimDstCountry, CountryKey(SpecialPrivate), "private")
	f(DimCountry, CountryKey(SpecialDocumentation), "documentation")
	f(DimSrcCountry, CountryKey([2]byte{'K', 'R'}), "KR")
	f(DimSrcCountry, Key{}, "unknown")
	f(DimDstAS, SpecialASKey(SpecialCGNAT), "cgnat")
	f(DimAS, ASKey(4766), "4766")
	f(DimAS, ASKey(0), "0")
	for i := uint8(1); i <= 7; i++ {
		c := SpecialCode(i)
		require.Equal(t, i, SpecialIndex(c))
		require.True(t, IsSpecial(c))
	}
	require.Equal(t, [2]byte{}, SpecialCode(8))
	require.False(t, IsSpecial([2]byte{'K', 'R'}))
	require.False(t, IsSpecial([2]byte{'z', 'z'}))
	_, err := DimCountry.ParseKey("kr")
	require.Error(t, err)
}
