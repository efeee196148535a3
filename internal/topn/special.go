package topn

// Special address ranges (private, documentation, CGNAT, ...) are no
// country and no AS: enrichment gives them a lower-case marker in place of
// the ISO code (flow.Record.SrcCountry/DstCountry), which no country has, so
// that they are counted as what they are and never labelled as a country.
// The AS dimensions keep them apart from "unknown" the same way: AS 0 with
// the marker in the key's fifth byte (SpecialASKey).
var specials = []struct {
	code [2]byte
	name string
}{
	{[2]byte{'p', 'v'}, "private"},       // RFC 1918, fc00::/7 (unique local)
	{[2]byte{'c', 'g'}, "cgnat"},         // 100.64.0.0/10, RFC 6598 shared address space
	{[2]byte{'d', 'c'}, "documentation"}, // RFC 5737, 2001:db8::/32, RFC 9637
	{[2]byte{'l', 'o'}, "loopback"},      // 127/8, ::1
	{[2]byte{'l', 'l'}, "link-local"},    // 169.254/16, fe80::/10
	{[2]byte{'m', 'c'}, "multicast"},     // 224/4, ff00::/8
	{[2]byte{'r', 's'}, "reserved"},      // 0/8, 240/4, benchmarking and other IANA special-purpose ranges
}

// Special range markers, for enrichment.
var (
	SpecialPrivate       = specials[0].code
	SpecialCGNAT         = specials[1].code
	SpecialDocumentation = specials[2].code
	SpecialLoopback      = specials[3].code
	SpecialLinkLocal     = specials[4].code
	SpecialMulticast     = specials[5].code
	SpecialReserved      = specials[6].code
)

// SpecialName names a special range's marker; ok false for anything else
// (a country code, or zero).
func SpecialName(code [2]byte) (string, bool) {
	if code[0] < 'a' || code[0] > 'z' {
		return "", false
	}
	for _, s := range specials {
		if s.code == code {
			return s.name, true
		}
	}
	return "", false
}

// specialCode is the marker of a special range's name.
func specialCode(name string) ([2]byte, bool) {
	for _, s := range specials {
		if s.name == name {
			return s.code, true
		}
	}
	return [2]byte{}, false
}

// SpecialIndex is a small number for a special range's marker, 1 to 7
// (0: not a marker), for fields narrower than the two bytes.
func SpecialIndex(code [2]byte) uint8 {
	for i, s := range specials {
		if s.code == code {
			return uint8(i + 1)
		}
	}
	return 0
}

// SpecialCode is the marker of a SpecialIndex (zero for any other number).
func SpecialCode(i uint8) [2]byte {
	if i == 0 || int(i) > len(specials) {
		return [2]byte{}
	}
	return specials[i-1].code
}

// IsSpecial says whether a country code is a special range's marker.
func IsSpecial(code [2]byte) bool { _, ok := SpecialName(code); return ok }

// SpecialASKey is the AS key of an address in a special range: AS 0, told
// apart from unknown by the marker.
func SpecialASKey(code [2]byte) (k Key) { k[4], k[5] = code[0], code[1]; return }

// Special returns the marker of a country or AS key of a special range.
func (k Key) special(d Dim) ([2]byte, bool) {
	var c [2]byte
	switch d {
	case DimSrcCountry, DimDstCountry, DimCountry:
		c = [2]byte{k[0], k[1]}
	case DimSrcAS, DimDstAS, DimAS:
		if k.AS() != 0 {
			return c, false
		}
		c = [2]byte{k[4], k[5]}
	default:
		return c, false
	}
	return c, IsSpecial(c)
}
