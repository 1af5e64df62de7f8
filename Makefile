# workbench-scheduler. Quickstart: `make run` (sandbox demo), `make test`.
# Build flags are fixed on purpose: changing them invalidates Go's build cache (minutes here).

MODULE     := github.com/workbench-scheduler/workbench-scheduler
VERSION    ?= v0.1.0
GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
KUBE_VERSION := v1.37.2
LDFLAGS := -X $(MODULE)/pkg/version.Version=$(VERSION) \
           -X $(MODULE)/pkg/version.GitCommit=$(GIT_COMMIT) \
           -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
           -X k8s.io/component-base/version.gitMajor=1 \
           -X k8s.io/component-base/version.gitMinor=37
GO      ?= go
# bash with pipefail: a failing benchmark must fail the target even when piped through a filter.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# Packages light enough to build twice (once under the race detector).
RACE_PKGS := ./pkg/... ./plugins/... ./cmd/...
INTEGRATION_PKGS := ./test/integration/...

.PHONY: all build run test test-unit test-integration verify fmt clean bench bench-gpu bench-micro

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/workbench-scheduler ./cmd/workbench-scheduler

run: build
	./bin/workbench-scheduler sandbox --scenario demo

test: test-unit test-integration

test-unit:
	$(GO) test -race -count=1 $(RACE_PKGS)

# One package holds every test that starts a real kube-apiserver: linking one takes ~3 GiB.
test-integration:
	$(GO) test -count=1 -timeout 20m $(INTEGRATION_PKGS)

# Benchmarks print the ratio to upstream measured in the same run and write bench/results/*.json.
# scheduler_perf quick set (500 nodes): every upstream shape with upstream's profile, then ours;
# regenerates the perf section of bench/RESULTS.md and bench/perf-throughput.svg.
bench: bin/etcd
	$(MAKE) perf PERF_LABEL=quick PERF_TIMEOUT=30m

# 5,000 nodes: upstream's shapes at their performance sizes and the Dense workload (50,000
# running spread-constrained pods). Not yet run on this machine: expect about an hour on 2 cores.
bench-large: bin/etcd
	$(MAKE) perf PERF_LABEL=large PERF_TIMEOUT=180m

PERF_LABEL ?= quick
PERF_TIMEOUT ?= 60m
.PHONY: perf bench-large
perf:
	mkdir -p bench/results/perf/logs
	cd bench/perf && PATH=$(CURDIR)/bin:$$PATH ARTIFACTS=$(CURDIR)/bench/results/perf/logs \
		$(GO) test -count=1 -run '^$$' -bench BenchmarkPerfScheduling -benchtime 1x \
		-perf-scheduling-label-filter=$(PERF_LABEL) -data-items-dir=../results/perf -timeout $(PERF_TIMEOUT) . \
		| awk '/^Benchmark/ {print $$1, $$5, $$6; fflush()} /^(ok|FAIL|PASS|--- FAIL)/ {print; fflush()}'
	$(GO) run ./bench/cmd/perfreport

# scheduler_perf starts etcd from PATH; this builds it from the module proxy.
bin/etcd:
	$(GO) build -o bin/etcd ./bench/cmd/etcd

# GPU placement and overhead: the real scheduler with upstream's default profile, then ours.
bench-gpu:
	$(GO) test -count=1 -run 'TestGPUFragmentation|TestGPUAffinityAttemptOverhead' -timeout 60m -v ./bench/ -workbench.bench

# Plugin hot paths on in-memory snapshots (7,500 nodes, 200,000 pods).
bench-micro:
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 200x -timeout 60m ./bench/

verify:
	@out=$$(gofmt -l cmd pkg plugins test manifests bench); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(MAKE) generate
	@git diff --exit-code -- pkg/apis || (echo "generated code is stale: run make generate and commit"; exit 1)

fmt:
	gofmt -w cmd pkg plugins test manifests bench

clean:
	rm -rf bin

# Generated code: deepcopy, conversion and defaulting of the plugin args (pkg/apis/config).
APIS := ./pkg/apis/config ./pkg/apis/config/v1
.PHONY: generate
generate:
	$(GO) tool deepcopy-gen --go-header-file hack/boilerplate.go.txt --output-file zz_generated.deepcopy.go $(APIS)
	$(GO) tool conversion-gen --go-header-file hack/boilerplate.go.txt --output-file zz_generated.conversion.go ./pkg/apis/config/v1
	$(GO) tool defaulter-gen --go-header-file hack/boilerplate.go.txt --output-file zz_generated.defaults.go ./pkg/apis/config/v1
