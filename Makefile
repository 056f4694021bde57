.PHONY: run test bench load fuzz build vet

# Run audex (API + worker) with everything it needs.
run:
	bash scripts/run.sh

# Run the whole test suite against real PostgreSQL.
test:
	bash scripts/test.sh

# Load synthetic events and print the performance figures (BENCHMARKS.md).
bench:
	bash scripts/bench.sh

# Ingest at full speed beside exports and a purge, then check that every
# acknowledged event is stored once (RELIABILITY.md; LOAD_SECONDS etc.).
load:
	bash scripts/bench.sh load

# Run every fuzz target for FUZZTIME each (default 30s).
fuzz:
	bash scripts/fuzz.sh

build:
	go build ./...

vet:
	gofmt -l . | (! grep .) && go vet ./...
