# OpenAgents runtime. `make run` starts the devnet demo; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
MODS := github.com/openagents/runtime/...
BIN := bin
STATICCHECK_VERSION := v0.8.2
FUZZTIME ?= 3s

.PHONY: run test test-unit test-fuzz test-race test-deps bench build lint fmt clean

run: build ## start the devnet with three agents and a live view (Ctrl-C stops)
	$(BIN)/openagents devnet

build: ## build the CLI and the four services into bin/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/openagents ./cmd/openagents
	$(GO) build -o $(BIN)/scheduler ./services/scheduler
	$(GO) build -o $(BIN)/ticker ./services/ticker
	$(GO) build -o $(BIN)/payer ./services/payer
	$(GO) build -o $(BIN)/publisher ./services/publisher

test: build test-deps test-unit test-fuzz ## everything CI runs

test-deps: ## install what the tests need (npm packages, Prometheus, btcd+lnd), cached
	bash scripts/test-deps.sh

test-unit:
	OPENAGENTS_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m $(MODS)

test-fuzz: ## run every fuzz target briefly
	bash scripts/fuzz.sh $(FUZZTIME)

test-race:
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
