# tmsd — make run builds and runs the collector on its embedded defaults;
# make test runs the whole suite (vet, unit, race, golden end-to-end, the
# dashboard in headless Chromium); make web rebuilds the dashboard's assets.
GO      ?= go
BIN     := bin/tmsd
PKGS    := ./...
RACE    := ./internal/decode/... ./internal/aggregate/... ./internal/ring/... ./internal/query/... ./internal/rollup/...

.PHONY: all build run test vet testdata clean web chromium snmpd screenshots

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tmsd

run: build
	./$(BIN)

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: vet chromium snmpd
	$(GO) test -count=1 -timeout 30m $(PKGS)
	$(GO) test -count=1 -race $(RACE)

# The dashboard's browser tests (cmd/tmsd/browser_test.go) drive Debian's
# chromium, installed here when missing; without root they skip, saying why.
chromium:
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
	  else echo "chromium is missing and this is not root: the browser tests will skip (apt-get install chromium)"; fi; \
	fi

# The SNMP tests (internal/enrich/snmp, cmd/tmsd/enrich_test.go) poll a real
# net-snmp snmpd they start on 127.0.0.1, installed here when missing;
# without root they skip, saying why (with CI set, they fail).
snmpd:
	@if ! command -v snmpd >/dev/null && [ ! -x /usr/sbin/snmpd ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y snmpd snmp; \
	  else echo "snmpd is missing and this is not root: the SNMP tests will skip (apt-get install snmpd snmp)"; fi; \
	fi

# Rebuilds web/static (committed, embedded in the binary) from web/src with
# the npm packages pinned in web/package-lock.json. Needs Node; tmsd does not.
web:
	cd web && npm ci --no-audit --no-fund && npm run build

# Retakes docs/screenshots from the testdata captures (the README shows them).
screenshots: chromium
	$(GO) test -count=1 -run '^TestDashboard$$' ./cmd/tmsd -screenshots

# Regenerates testdata/pcaps from real exporters (softflowd, pmacct) and the
# golden answers from independent collectors (nfcapd/nfdump, sfacctd).
# It installs the Debian packages it needs.
testdata:
	bash testdata/pcaps/make.sh

clean:
	rm -rf bin

# make bench: Go micro-benchmarks, then tmsd vs goflow2 vs nfcapd end to end
# with cmd/flowgen (< 40 min; writes docs/BENCHMARKS.md). BENCH_QUICK=1 make
# bench is a ~4-minute version. See bench/run.sh.
.PHONY: bench bench-micro
bench:
	bash bench/run.sh

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# make fuzz: every Go fuzz target of the repository, each for FUZZTIME,
# FUZZJOBS at a time (scripts/fuzz.sh). It fails if any target found a crash.
# Go minimizes every new interesting input for up to a minute by default,
# which would eat short runs: FUZZFLAGS bounds it (add -parallel=1 when
# running several jobs on a small machine).
FUZZTIME  ?= 60s
FUZZJOBS  ?= 1
FUZZFLAGS ?= -fuzzminimizetime=5s
.PHONY: fuzz
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZJOBS=$(FUZZJOBS) FUZZFLAGS="$(FUZZFLAGS)" bash scripts/fuzz.sh
