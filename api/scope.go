package api

import (
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// scopeFilters are the query parameters that select a scope, in the order
// their conflicts are reported.
var scopeFilters = []string{"exporter", "proto", "if", "app", "ip"}

// parseScope reads the scope filters of a request: none (the whole network),
// exporter=, proto=, if=EXPORTER:IFINDEX (or an interface's name:
// EXPORTER:IFNAME, IFNAME) with dir=in|out, app= or ip=. tmsd
// keeps tables per one of them, not per combinations: a combination, or if=
// and dir= without each other, is a 400 naming the filter, rather than an
// answer from the wrong table. Endpoints that take a scope (top, series,
// report) call it.
func (a *API) parseScope(c echo.Context) (topn.Scope, error) {
	var set []string
	for _, name := range scopeFilters {
		if c.QueryParam(name) != "" {
			set = append(set, name)
		}
	}
	dir := c.QueryParam("dir")
	if len(set) > 1 {
		return topn.Scope{}, badParam(set[1], "%s and %s cannot be combined: tmsd keeps tables per %s, per %s, not per both",
			set[0], set[1], filterWhat(set[0]), filterWhat(set[1]))
	}
	if dir != "" && (len(set) == 0 || set[0] != "if") {
		return topn.Scope{}, badParam("dir", "dir goes with if=EXPORTER:IFINDEX: only interfaces have a direction")
	}
	if len(set) == 0 {
		return topn.Scope{}, nil
	}
	v := c.QueryParam(set[0])
	switch set[0] {
	case "exporter":
		a, err := parseAddr(v)
		if err != nil {
			return topn.Scope{}, badParam("exporter", "not an IP address: %q", v)
		}
		return topn.Scope{Kind: topn.ScopeExporter, Exporter: a}, nil
	case "proto":
		p, err := topn.ParseProto(v)
		if err != nil {
			return topn.Scope{}, badParam("proto", "%v", err)
		}
		return topn.Scope{Kind: topn.ScopeProto, Proto: p}, nil
	case "if":
		k, err := topn.DimInIf.ParseKey(v)
		if err != nil && a.deps.Names != nil {
			exp, idx, nerr := a.deps.Names.FindInterface(v)
			if nerr != nil {
				return topn.Scope{}, badParam("if", "%v", nerr)
			}
			k, err = topn.IfKey(flow.AddrFrom(exp.Unmap()), idx), nil
		}
		if err != nil {
			return topn.Scope{}, badParam("if", "%v", err)
		}
		sc := topn.Scope{Kind: topn.ScopeInterface, Exporter: k.Addr(), IfIndex: k.IfIndex()}
		switch dir {
		case "in":
			sc.Dir = topn.DirIn
		case "out":
			sc.Dir = topn.DirOut
		case "":
			return topn.Scope{}, badParam("dir", "if needs dir=in or dir=out: interface tables are kept per direction")
		default:
			return topn.Scope{}, badParam("dir", "must be in or out, got %q", dir)
		}
		return sc, nil
	case "app":
		k, err := topn.DimApp.ParseKey(v)
		if err != nil {
			return topn.Scope{}, badParam("app", "%v", err)
		}
		return topn.Scope{Kind: topn.ScopeApp, App: k}, nil
	}
	ip, err := parseAddr(v)
	if err != nil {
		return topn.Scope{}, badParam("ip", "not an IP address: %q", v)
	}
	return topn.Scope{Kind: topn.ScopeIP, IP: ip}, nil
}

func filterWhat(name string) string {
	switch name {
	case "if":
		return "interface and direction"
	case "app":
		return "application"
	case "ip":
		return "address"
	}
	return name
}

// parseAddr reads an address as the aggregator keys it: IPv4 mapped into IPv6.
func parseAddr(s string) (flow.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return flow.Addr{}, err
	}
	return flow.AddrFrom(a.Unmap()), nil
}

// checkScopeDim refuses a dimension the scope keeps no table of (d 0: none asked).
func checkScopeDim(sc topn.Scope, d topn.Dim) error {
	if d == 0 || sc.Has(d) {
		return nil
	}
	names := make([]string, 0, len(sc.Dims()))
	for _, x := range sc.Dims() {
		names = append(names, x.String())
	}
	return badParam("by", "scope %s has no table by %s; it has %s", sc, d, strings.Join(names, ", "))
}
