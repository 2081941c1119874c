GO ?= go
STATICCHECK_VERSION ?= v0.8.2
PKGS := ./...

.PHONY: build test test-long lint fmt-check vet staticcheck bench fuzz demo run clean

build:
	$(GO) build -o bin/pryvsync ./cmd/pryvsync

## test: the CI suite: formatting, vet, staticcheck, and every test with -race.
test: fmt-check vet staticcheck
	$(GO) test -race -count=1 -timeout 9m $(PKGS)

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

bench:
	mkdir -p bench
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./crdt ./syncproto ./server/store ./model | tee bench/micro.txt

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzValidate -fuzztime 60s ./syncproto

run: build
	./bin/pryvsync serve

demo: build
	./scripts/demo.sh

clean:
	rm -rf bin bench
