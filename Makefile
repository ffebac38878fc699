# OpenAgents runtime. `make run` starts the devnet demo; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
MODS := github.com/openagents/runtime/...
BIN := bin
STATICCHECK_VERSION := v0.8.2
FUZZTIME ?= 3s
# Packages run under the race detector. Packages that hold go-nostr relay connections are left
# out: khatru and go-nostr v0.52.0 have data races of their own (listener maps, Relay.Close vs
# connect) that -race reports from inside those libraries, not from this code.
RACE_PKGS := $(addprefix ./pkg/,payer devln invoice budget lifecycle trigger actions trajectory custody registry nipsa identity natsx)

.PHONY: run test test-unit test-fuzz test-race test-deps bench build lint fmt clean

run: build ## start the devnet with three agents and a live view (Ctrl-C stops)
	$(BIN)/openagents devnet

# Build tags. `make build TAGS=libsecp256k1` links the C libsecp256k1 that go-nostr vendors
# (cgo; gcc needed) for 2-4x faster Schnorr signing and verification: the 200-agent bench went
# from ~135 to ~188 ticks/s and 14.4 to 10.3 ms CPU per tick. Default off: the pure-Go build.
TAGS ?=
GOBUILD = $(GO) build $(if $(TAGS),-tags '$(TAGS)')

build: ## build the CLI and the four services into bin/ (TAGS=libsecp256k1 for cgo signatures)
	@mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/openagents ./cmd/openagents
	$(GOBUILD) -o $(BIN)/scheduler ./services/scheduler
	$(GOBUILD) -o $(BIN)/ticker ./services/ticker
	$(GOBUILD) -o $(BIN)/payer ./services/payer
	$(GOBUILD) -o $(BIN)/publisher ./services/publisher

test: build test-deps test-unit test-race test-fuzz ## everything CI runs

test-deps: ## install what the tests need (npm packages, Prometheus, btcd+lnd), cached
	bash scripts/test-deps.sh

test-unit: ## unit, integration, interop, e2e, deploy, metrics and LND tests
	OPENAGENTS_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m $(MODS)

test-fuzz: ## run every fuzz target briefly
	bash scripts/fuzz.sh $(FUZZTIME)

test-race: ## the race detector on the packages listed in RACE_PKGS
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

bench: build ## load run: the whole pipeline with 1,000 agents, plus the package benchmarks
	$(BIN)/openagents bench --agents 1000 --for 45s

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(MODS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(MODS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
