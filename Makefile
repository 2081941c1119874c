GO ?= go
STATICCHECK_VERSION ?= v0.8.2
PKGS := ./...

.PHONY: build test test-long lint fmt-check vet staticcheck bench fuzz demo demo-cluster run clean

build:
	$(GO) build -o bin/pryvsync ./cmd/pryvsync

## test: the CI suite: formatting, vet, staticcheck, and every test with -race;
## then the server, replica and browser tests again with their servers as
## nodes of a cluster over three in-process NATS servers (JetStream).
CLUSTER_PKGS := ./server ./replica ./e2e
test: fmt-check vet staticcheck
	$(GO) test -race -count=1 -timeout 9m $(PKGS)
	PRYVSYNC_TEST_STORE=jetstream $(GO) test -race -count=1 -timeout 9m $(CLUSTER_PKGS)

test-long:
	PRYVSYNC_LONG=1 $(GO) test -race -count=1 -timeout 60m $(PKGS)

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

BENCH_PKGS := ./crdt ./syncproto ./model ./server/store ./replica ./loadgen
# Reduced sizes, so that the whole target takes a few minutes; the full-size
# figures of docs/PERFORMANCE.md come from `./bin/pryvsync bench --out ...`.
BENCH_FLAGS ?= --n 20000 --runs 3 --w3-events 250 --w5-conns 2000 --w6-changes 20000 --w7-trials 20

## bench: micro-benchmarks (codec, merge, scope check, committer, feed read,
## replica apply, physical baselines) into bench/micro.txt, then the workloads
## W1–W7 at reduced sizes into bench/workloads.json (and bench/workloads.txt,
## bench/table.txt). Compare two runs with benchstat old/micro.txt bench/micro.txt.
bench: build
	mkdir -p bench
	{ $(GO) test -run '^$$' -bench . -benchmem -count 6 -timeout 30m $(BENCH_PKGS); echo $$? > bench/.status; } | tee bench/micro.txt
	@exit $$(cat bench/.status)
	{ ./bin/pryvsync bench $(BENCH_FLAGS) --out bench/workloads.json --benchfmt bench/workloads.txt; echo $$? > bench/.status; } | tee bench/table.txt
	@exit $$(cat bench/.status)

## fuzz: every fuzz target for FUZZTIME each (default 60s); findings land in testdata/fuzz.
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime $(FUZZTIME) ./syncproto
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./syncproto
	$(GO) test -run '^$$' -fuzz '^FuzzMerge$$' -fuzztime $(FUZZTIME) ./crdt
	$(GO) test -run '^$$' -fuzz '^FuzzReadDoc$$' -fuzztime $(FUZZTIME) ./crdt
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeInbound$$' -fuzztime $(FUZZTIME) ./replica
	$(GO) test -run '^$$' -fuzz '^FuzzRouter$$' -fuzztime $(FUZZTIME) ./server
	$(GO) test -run '^$$' -fuzz '^FuzzMultipart$$' -fuzztime $(FUZZTIME) ./server

run: build
	./bin/pryvsync serve

demo: build
	./scripts/demo.sh

## demo-cluster: three NATS servers and two pryvsync nodes on loopback;
## replicas on different nodes see each other's writes live.
demo-cluster: build
	./scripts/demo-cluster.sh

clean:
	rm -rf bin bench
