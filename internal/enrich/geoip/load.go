package geoip

import (
	"bytes"
	"compress/gzip"
	_ "embed" // the default database
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/oschwald/geoip2-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2"
)

// The embedded default: country and AS in one database, built by
// scripts/geoip-default.sh from ip-location-db (default/SOURCES.md).
//
//go:embed default/default.mmdb.gz
var embeddedGz []byte

// embeddedLicense is shown with the embedded database (Info).
const embeddedLicense = "CC BY 4.0: AS data RouteViews (routeviews.org), NRO (nro.net), IP Geolocation by DB-IP (db-ip.com); " +
	"country data NRO (nro.net); via ip-location-db, converted by tmsd"

// Formats a database is read as (DatabaseInfo.Format).
const (
	FormatMaxMind = "maxmind"        // GeoIP2/GeoLite2 and DB-IP's compatible files, through geoip2-golang
	FormatIPinfo  = "ipinfo"         // IPinfo's mmdb files
	FormatIPLocDB = "ip-location-db" // sapics/ip-location-db's mmdb files
	FormatTmsd    = "tmsd"           // the embedded default
	FormatGeneric = "generic"        // another type, read by the fields its records have
)

// database is one database file, flattened.
type database struct {
	t                 *table
	asNames           map[uint32]string
	ccNames           map[[2]byte]string // the database's English names
	countries, ases   int                // networks with a country, with an AS
	typ, format, desc string
	built             time.Time
	networks          int
}

// record is what a database says of a network.
type record struct {
	cc             [2]byte
	as             uint32
	ccName, asName string
}

type decodeFunc func(maxminddb.Result) (record, error)

// embedded decompresses the default database.
func embedded() ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(embeddedGz))
	if err != nil {
		return nil, fmt.Errorf("embedded database: %w", err)
	}
	// gzip's trailer holds the size (mod 2^32): one allocation.
	size := 0
	if n := len(embeddedGz); n >= 4 {
		size = int(binary.LittleEndian.Uint32(embeddedGz[n-4:]))
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	if _, err := io.Copy(buf, zr); err != nil {
		return nil, fmt.Errorf("embedded database: %w", err)
	}
	return buf.Bytes(), nil
}

// load opens a MaxMind DB from memory, tells its format, and flattens it.
// It keeps nothing of data.
func load(data []byte) (*database, error) {
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, err // says it is not a valid MaxMind DB
	}
	md := r.Metadata
	db := &database{
		typ:     md.DatabaseType,
		built:   md.BuildTime().UTC(),
		asNames: map[uint32]string{},
		ccNames: map[[2]byte]string{},
		desc:    md.Description["en"],
		format:  FormatGeneric,
	}
	if db.desc == "" {
		for _, d := range md.Description {
			db.desc = d
			break
		}
	}
	dec, format, err := decoderFor(data)
	if err != nil {
		return nil, err
	}
	db.format = format

	var r4 ranges4
	var r6 ranges6
	cache := map[uintptr]value{}
	for res := range r.Networks() {
		if err := res.Err(); err != nil {
			return nil, err
		}
		db.networks++
		v, ok := cache[res.Offset()]
		if !ok {
			rec, err := dec(res)
			if err != nil {
				return nil, fmt.Errorf("record of %s: %w", res.Prefix(), err)
			}
			v = pack(rec.cc, rec.as)
			if rec.cc != ([2]byte{}) && rec.ccName != "" {
				db.ccNames[rec.cc] = rec.ccName
			}
			if rec.as != 0 && rec.asName != "" {
				db.asNames[rec.as] = rec.asName
			}
			cache[res.Offset()] = v
		}
		if v&ccBits != 0 {
			db.countries++
		}
		if v&asBits != 0 {
			db.ases++
		}
		p := res.Prefix()
		if !p.IsValid() {
			return nil, fmt.Errorf("invalid network %v", p)
		}
		ok = true
		if p.Addr().Is4() {
			b := p.Addr().As4()
			start := binary.BigEndian.Uint32(b[:])
			end := start | uint32(1<<(32-p.Bits())-1)
			ok = r4.add(start, end, v)
		} else {
			b := p.Addr().As16()
			start := u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
			end := start
			switch n := p.Bits(); {
			case n <= 64:
				end.hi |= ^uint64(0) >> n
				end.lo = ^uint64(0)
			default:
				end.lo |= ^uint64(0) >> (n - 64)
			}
			ok = r6.add(start, end, v)
			if ok && start == (u128{}) && p.Bits() <= 96 {
				// A network holding ::/96 holds the IPv4 tree.
				ok = r4.add(0, 0xffffffff, v)
			}
		}
		if !ok {
			return nil, fmt.Errorf("network %s out of order: the search tree is corrupt", p)
		}
	}
	s4, v4 := r4.done()
	s6, v6 := r6.done()
	db.t = newTable(s4, v4, s6, v6)
	return db, nil
}

// decoderFor tells a database's format. geoip2-golang knows MaxMind's types
// and DB-IP's compatible ones; anything else is read by its records' fields.
func decoderFor(data []byte) (decodeFunc, string, error) {
	gr, err := geoip2.OpenBytes(data)
	var unknown geoip2.UnknownDatabaseTypeError
	switch {
	case errors.As(err, &unknown):
		return decodeGeneric, genericFormat(unknown.DatabaseType), nil
	case err != nil:
		return nil, "", err
	}
	probe := netip.IPv4Unspecified()
	if _, err := gr.Country(probe); err == nil {
		return decodeCountry, FormatMaxMind, nil
	}
	if _, err := gr.ASN(probe); err == nil {
		return decodeASN, FormatMaxMind, nil
	}
	return nil, "", fmt.Errorf("database type %q has no countries nor AS numbers", gr.Metadata().DatabaseType)
}

func genericFormat(typ string) string {
	switch {
	case strings.HasPrefix(strings.ToLower(typ), "ipinfo"):
		return FormatIPinfo
	case typ == "tmsd-Country-ASN":
		return FormatTmsd
	}
	// ip-location-db: "country ipv4", "asn ipvAll", ...
	if f := strings.Fields(typ); len(f) == 2 && strings.HasPrefix(f[1], "ipv") {
		return FormatIPLocDB
	}
	return FormatGeneric
}

// decodeCountry reads a GeoIP2/GeoLite2 Country, City or Enterprise record:
// the country, or failing it the registered country.
func decodeCountry(res maxminddb.Result) (record, error) {
	var c geoip2.Country
	if err := res.Decode(&c); err != nil {
		return record{}, err
	}
	var rec record
	cc := c.Country
	if _, ok := isoCode(cc.ISOCode); !ok {
		cc = c.RegisteredCountry
	}
	rec.cc, _ = isoCode(cc.ISOCode)
	rec.ccName = cc.Names.English
	return rec, nil
}

// decodeASN reads a GeoLite2-ASN (or GeoIP2-ISP, DB-IP ASN) record.
func decodeASN(res maxminddb.Result) (record, error) {
	var a geoip2.ASN
	if err := res.Decode(&a); err != nil {
		return record{}, err
	}
	if a.AutonomousSystemNumber > 0xffffffff {
		return record{}, fmt.Errorf("AS number %d", a.AutonomousSystemNumber)
	}
	return record{as: uint32(a.AutonomousSystemNumber), asName: a.AutonomousSystemOrganization}, nil
}

// genericRecord has the fields of the other formats; each is decoded as
// whatever type it has, so that no format's choice makes a record fail.
//
//	GeoIP2 shape (tmsd's default too): country{iso_code, names{en}}, registered_country, autonomous_system_number, autonomous_system_organization
//	ip-location-db: country_code; autonomous_system_number, autonomous_system_organization
//	IPinfo: country_code, country (the name), or country (the code), country_name; asn ("AS4766"), as_name
type genericRecord struct {
	Country           any `maxminddb:"country"`
	RegisteredCountry any `maxminddb:"registered_country"`
	CountryCode       any `maxminddb:"country_code"`
	CountryName       any `maxminddb:"country_name"`
	ASNumber          any `maxminddb:"autonomous_system_number"`
	ASOrg             any `maxminddb:"autonomous_system_organization"`
	ASN               any `maxminddb:"asn"`
	ASName            any `maxminddb:"as_name"`
}

func decodeGeneric(res maxminddb.Result) (record, error) {
	var g genericRecord
	if err := res.Decode(&g); err != nil {
		return record{}, err
	}
	var rec record
	// The code: country.iso_code, registered_country.iso_code, a two-letter
	// country, country_code.
	var name string
	switch c := g.Country.(type) {
	case map[string]any:
		rec.cc, _ = isoCode(str(c["iso_code"]))
		if n, ok := c["names"].(map[string]any); ok {
			name = str(n["en"])
		}
	case string:
		if cc, ok := isoCode(c); ok {
			rec.cc = cc
		} else {
			name = c // IPinfo Lite: the name, the code is country_code
		}
	}
	if rec.cc == ([2]byte{}) {
		if c, ok := g.RegisteredCountry.(map[string]any); ok {
			if cc, ok := isoCode(str(c["iso_code"])); ok {
				rec.cc = cc
				if n, ok := c["names"].(map[string]any); ok {
					name = str(n["en"])
				}
			}
		}
	}
	if rec.cc == ([2]byte{}) {
		rec.cc, _ = isoCode(str(g.CountryCode))
	}
	if name == "" {
		name = str(g.CountryName)
	}
	if rec.cc != ([2]byte{}) {
		rec.ccName = name
	}
	// The AS: autonomous_system_number, or asn ("AS4766", or a number).
	as, ok := asNumber(g.ASNumber)
	if !ok {
		as, ok = asNumber(g.ASN)
	}
	if ok {
		rec.as = as
		rec.asName = str(g.ASOrg)
		if rec.asName == "" {
			rec.asName = str(g.ASName)
		}
	}
	return rec, nil
}

func str(v any) string { s, _ := v.(string); return s }

// isoCode reads an ISO 3166 alpha-2 code, upper-casing it; "ZZ" and "XX",
// which some databases write for unknown, are unknown.
func isoCode(s string) ([2]byte, bool) {
	if len(s) != 2 {
		return [2]byte{}, false
	}
	c := [2]byte{s[0] &^ 0x20, s[1] &^ 0x20}
	if c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' || c == [2]byte{'Z', 'Z'} || c == [2]byte{'X', 'X'} {
		return [2]byte{}, false
	}
	return c, true
}

// asNumber reads an AS number stored as a number or as "AS4766"/"4766".
func asNumber(v any) (uint32, bool) {
	var n uint64
	switch x := v.(type) {
	case uint16:
		n = uint64(x)
	case uint32:
		n = uint64(x)
	case uint64:
		n = x
	case uint:
		n = uint64(x)
	case int:
		if x < 0 {
			return 0, false
		}
		n = uint64(x)
	case int32:
		if x < 0 {
			return 0, false
		}
		n = uint64(x)
	case string:
		x = strings.TrimPrefix(strings.TrimPrefix(x, "AS"), "as")
		var err error
		if n, err = strconv.ParseUint(x, 10, 32); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if n == 0 || n > 0xffffffff {
		return 0, false
	}
	return uint32(n), true
}
