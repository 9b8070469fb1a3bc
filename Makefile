# knotmtls build and test entry points. Modules: the library at the root,
# integration/ (end-to-end tests against a real Vault, the demo) and
# integration/vaultserver/ (builds the Vault server binary; see
# scripts/vault-image.sh).
#
#   make test              unit tests (-race), then vault-image, then integration tests (-race)
#   make test-unit         root module tests with -race
#   make test-integration  integration module tests with -race (needs vault-image or Docker + network)
#   make vault-image       the Vault image + binary once (cached): hashicorp/vault when it can be
#                          pulled, else compiled from the Go module proxy into a FROM scratch image
#   make lint              gofmt + go vet in the root and integration modules
#   make bench             benchmarks, with knotmtls/baseline ratios (BENCHCOUNT runs each)
#   make fuzz              every fuzz target for FUZZTIME (10s) each; a crash fails
#   make demo              vault-image, then the end-to-end demo (integration/cmd/demo)
#
# Nothing here depends on CI=true: CI runs the same targets and skips nothing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go

# testcontainers' reaper container cannot be pulled here; Terminate cleans up.
export TESTCONTAINERS_RYUK_DISABLED ?= true

TESTFLAGS ?= -race -count=1
UNIT_TIMEOUT ?= 15m
INTEGRATION_TIMEOUT ?= 40m

# $(call timed,label,command): run command, then print how long it took.
timed = start=$$(date +%s); if $(2); then rc=0; else rc=$$?; fi; \
	echo "--- $(1) took $$(( $$(date +%s) - start ))s"; exit $$rc

.PHONY: all test test-unit test-integration vault-image bench demo lint fmt-check vet fuzz

all: lint test

test: test-unit vault-image test-integration

test-unit:
	@echo "=== unit tests (root module)"
	@$(call timed,unit tests,$(GO) test $(TESTFLAGS) -timeout $(UNIT_TIMEOUT) ./...)
	@$(call timed,unit tests (otelknotmtls),cd otelknotmtls && $(GO) test $(TESTFLAGS) -timeout $(UNIT_TIMEOUT) ./...)

test-integration:
	@echo "=== integration tests (integration module)"
	@$(call timed,integration tests,cd integration && $(GO) test $(TESTFLAGS) -timeout $(INTEGRATION_TIMEOUT) ./...)

vault-image:
	@echo "=== vault binary and image"
	@$(call timed,vault-image,scripts/vault-image.sh all)

BENCHCOUNT ?= 5
BENCHOUT ?= $(CURDIR)/bench.out

# Each knotmtls benchmark has a baseline (static tls.Config, raw net/http)
# measured in the same run; scripts/benchratio.awk pairs them and prints
# baseline_ns / knotmtls_ns (1.00 = no overhead).
bench:
	@$(call timed,bench,$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./provider/ ./knotclient/ | tee $(BENCHOUT) && awk -f scripts/benchratio.awk $(BENCHOUT))

# Native Go fuzzing: one `go test -fuzz` run per target, FUZZTIME each
# (10s by default: 12 targets, about 3 minutes with the builds). The committed seed corpora
# (<package>/testdata/fuzz/<target>/) also run in every `go test`. A crasher
# is written next to them by go test: commit it as a seed and add a
# regression test. All targets run; the target fails if any of them did.
# FUZZMINIMIZETIME 0s: minimizing each new interesting input (default 60s)
# would eat the whole budget of the targets with large PEM seeds; minimize a
# crasher afterwards with -run/-fuzz on that target alone.
FUZZTIME ?= 10s
FUZZMINIMIZETIME ?= 0s
FUZZ_TARGETS := \
	provider:FuzzParseCertificates provider:FuzzParsePrivateKey provider:FuzzParseBundle provider:FuzzCheckCSR \
	vaultsource:FuzzKVSecret vaultsource:FuzzTransitKey vaultsource:FuzzTransitSignature \
	knotclient:FuzzErrorBody knotclient:FuzzVerifyWebhook knotclient:FuzzParseWebhook knotclient:FuzzJWK \
	knotclient/knottest:FuzzCardRequest

fuzz:
	@echo "=== fuzz ($(FUZZTIME) per target)"
	@start=$$(date +%s); failed=""; summary=""; \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; log=$$(mktemp); \
		echo "--- $$pkg $$name"; \
		if $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$pkg/ >$$log 2>&1; then rc=ok; else rc=FAILED; failed="$$failed $$pkg:$$name"; cat $$log; fi; \
		execs=$$(grep -o 'execs: [0-9]*' $$log | tail -1 | awk '{print $$2}'); \
		summary="$$summary$$(printf '%-22s %-24s %10s execs  %s' $$pkg $$name "$${execs:-?}" $$rc)\n"; \
		rm -f $$log; \
	done; \
	printf "%b" "$$summary"; \
	echo "--- fuzz took $$(( $$(date +%s) - start ))s"; \
	if [ -n "$$failed" ]; then echo "fuzz failures:$$failed (crashers are in <package>/testdata/fuzz/)"; exit 1; fi

# The demo needs the same Vault image as the integration tests: vault-image
# first (a no-op once cached; on a new machine it compiles Vault, printing
# progress, unless hashicorp/vault can be pulled).
demo: vault-image
	@echo "=== demo (integration/cmd/demo)"
	@cd integration && $(GO) run ./cmd/demo

lint: fmt-check vet

fmt-check:
	@echo "=== gofmt"
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# integration/vaultserver is vetted with the flags of its build (CGO_ENABLED=0,
# -trimpath) so that vet reuses the compiled Vault dependencies: ~2 min after
# `make vault-image` (which .ci/run runs first), ~14 min on a cold cache.
vet:
	@echo "=== go vet"
	@$(call timed,go vet (root),$(GO) vet ./...)
	@$(call timed,go vet (otelknotmtls),cd otelknotmtls && $(GO) vet ./...)
	@$(call timed,go vet (integration),cd integration && $(GO) vet ./...)
	@$(call timed,go vet (integration/vaultserver),cd integration/vaultserver && CGO_ENABLED=0 $(GO) vet -trimpath ./...)
