# tmsd — make run builds and runs the collector on its embedded defaults;
# make test runs the whole suite (vet, unit, race, golden end-to-end).
GO      ?= go
BIN     := bin/tmsd
PKGS    := ./...
RACE    := ./internal/decode/... ./internal/aggregate/... ./internal/ring/... ./internal/query/... ./internal/rollup/...

.PHONY: all build run test vet testdata clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tmsd

run: build
	./$(BIN)

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: vet
	$(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race $(RACE)

# Regenerates testdata/pcaps from real exporters (softflowd, pmacct) and the
# golden answers from independent collectors (nfcapd/nfdump, sfacctd).
# It installs the Debian packages it needs.
testdata:
	bash testdata/pcaps/make.sh

clean:
	rm -rf bin

# make bench: Go micro-benchmarks, then tmsd vs goflow2 vs nfcapd end to end
# with cmd/flowgen (< 30 min; writes docs/BENCHMARKS.md). BENCH_QUICK=1 make
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
