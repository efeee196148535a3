package api

import "github.com/tmsd/tmsd/internal/topn"

// ifLabel names an interface key: ifIndex 0 is no interface but the
// exporter's "unknown" (NetFlow's 0; sFlow's 0x3fffffff, which the decoder
// turns into 0, as pmacct sends for every sample), shown as such rather
// than as an interface numbered 0 or 1073741823.
func ifLabel(d topn.Dim, k topn.Key) string {
	if k.IfIndex() == 0 {
		return k.Addr().String() + " unknown interface"
	}
	return d.Format(k)
}
