package geoip

// renamed are ISO 3166 short names changed since the CLDR data of
// golang.org/x/text that regions.go was generated from.
var renamed = map[[2]byte]string{
	{'M', 'K'}: "North Macedonia", // 2019
	{'S', 'Z'}: "Eswatini",        // 2018
	{'T', 'R'}: "Türkiye",         // 2022
	{'C', 'V'}: "Cabo Verde",      // 2013
}

// regionName names an upper-case two-letter code ("" unknown).
func regionName(cc [2]byte) string {
	if name, ok := renamed[cc]; ok {
		return name
	}
	return regionTable[cc]
}
