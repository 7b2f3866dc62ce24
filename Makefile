# mirrorline: `make demo` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
GO    ?= go
BIN   := .bin
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_VTPROTO_VERSION := v0.6.0
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
# messages whose decoding may reuse a reset message's headers and parts
# (ResetVT keeps them; see proto/mirrorline/v1/codec.go)
VTPROTO_POOL := $(foreach m,Exchange Request Response Header Message Replay StubAnswer,--go-vtproto_opt=pool=github.com/mirrorline/mirrorline/proto/mirrorline/v1.$(m))
IMAGE ?= mirrorline/mirrorline:dev

.PHONY: all bpf build deps image test-faults deploy-check demo test test-stress test-unit test-e2e bench lint proto kafka-start kafka-stop clean

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN)/mirrorline ./cmd/mirrorline
	$(GO) build -o $(BIN)/payments ./test/demo/payments
	$(GO) build -o $(BIN)/gateway ./test/demo/gateway
	$(GO) build -o $(BIN)/load ./test/demo/load
	$(GO) build -o $(BIN)/orders ./test/demo/orders

## image: the mirrorline image IMAGE (and mirrorline/payments-demo:dev, mirrorline/orders-demo:dev)
## FROM scratch from static binaries, pulling nothing (deploy/Dockerfile.scratch; needs a Docker engine).
## With a registry: docker build -f deploy/Dockerfile --target mirrorline .
image:
	MIRRORLINE_IMAGE=$(IMAGE) deploy/local/images mirrorline

## demo: the whole pipeline in one process on the embedded broker, in front of the bundled demo services
demo: build
	BIN=$(BIN) test/demo/run

## test: unit tests, then integration and end-to-end tests against a real Apache Kafka (KRaft)
## broker: KAFKA_BROKERS if set, else the project's own broker: a container of the local Kafka
## image (testcontainers-go) when a Docker engine answers, otherwise test/kafka/start.
## The container tests (test/containers) skip without a Docker engine.
test: lint
	@test/deps
	@test/ops/tools >/dev/null
	@set -euo pipefail; \
	if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then \
		echo "make test: container tests (test/containers) on Docker engine $$(docker version --format '{{.Server.Version}}')"; \
	else echo "make test: container tests (test/containers) skip: no Docker engine answers (test/deps starts one where it can)"; fi; \
	if [ -z "$${KAFKA_BROKERS:-}" ]; then \
		KAFKA_BROKERS=$$($(GO) run ./test/kafka/harness start); started=1; \
		kdir=$${TMPDIR:-/tmp}/mirrorline-kafka-19092; \
		if [ -s "$$kdir/kafka.pid" ]; then export KAFKA_BROKER_LOG=$$kdir/server.log; fi; \
	else started=0; fi; \
	export KAFKA_BROKERS; echo "make test: Kafka at $$KAFKA_BROKERS"; \
	rc=0; $(GO) test -count=1 -timeout 12m ./... || rc=$$?; \
	if [ "$$started" = 1 ]; then $(GO) run ./test/kafka/harness stop; fi; \
	test/deps --stop-docker; \
	exit $$rc

## test-stress: make test STRESS_RUNS times (default 5) on a clean clone of HEAD while two
## busy loops load the CPUs; one line per run and the tally (6-9 min a run on 2 cores)
test-stress:
	@test/stress

## test-faults: fault tests against Kafka brokers they start, stop and kill themselves (Java 17+, ~2.5 min; also part of make test)
test-faults:
	@test/deps
	$(GO) test -count=1 -timeout 10m -v ./test/faults/

deps:
	test/deps
	test/ops/tools >/dev/null

## deploy-check: chart, compose, rules, dashboard, and the ops end-to-end tests
deploy-check: deps
	$(GO) test -count=1 ./test/ops/ && $(GO) test -count=1 -run 'TestOps' ./test/e2e/

## test-unit: the tests that need no Kafka broker
test-unit:
	$(GO) test -count=1 ./collector/... ./redactor/... ./replayer/... ./comparator/... ./telemetry/... ./cmd/... ./test/demo/...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

## bench: Go benchmarks, the replayer's accuracy against vegeta, then the load harness
## (bench/load: proxy overhead vs direct, Go reverse proxy and nginx mirror; slow shadow;
## end-to-end zero-loss rate and delay through real Kafka; fetch wait; ~3.5 min on 2 cores; see docs/benchmarks.md),
## then bench/cost (CPU-µs per exchange and RSS of every stage beside its peer; docs/capacity.md)
## and bench/producer (the collectors' Kafka producer: CPU per record against linger)
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./redactor/... ./collector/... ./proto/...
	$(GO) test -run '^$$' -bench '^BenchmarkGenerator$$' -benchtime 8000x ./bench/load/
	$(GO) run ./bench/replay -rate 1000 -duration 5s
	$(GO) run ./bench/replay -bursty
	$(GO) run ./bench/load
	$(GO) run ./bench/cost
	$(GO) run ./bench/producer

## bpf: regenerate collector/ebpf/capture_bpfel.{go,o} from capture.bpf.c with bpf2go
## (needs clang, llvm and libbpf-dev: apt-get install clang llvm libbpf-dev)
bpf:
	BPF2GO_CFLAGS="-I/usr/include/$$(uname -m)-linux-gnu" $(GO) generate ./collector/ebpf/

## proto: regenerate proto/mirrorline/v1/*.pb.go and *_vtproto.pb.go (needs protoc: apt-get install protobuf-compiler)
proto:
	GOBIN=$(CURDIR)/$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$(PROTOC_GEN_GO_VTPROTO_VERSION)
	PATH=$(CURDIR)/$(BIN):$$PATH protoc --go_out=. --go_opt=paths=source_relative \
		--go-vtproto_out=. --go-vtproto_opt=paths=source_relative,features=marshal+unmarshal+unmarshal_unsafe+size+pool \
		$(VTPROTO_POOL) \
		proto/mirrorline/v1/*.proto
	GOBIN=$(CURDIR)/$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(CURDIR)/$(BIN):$$PATH protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		--include_imports --descriptor_set_out=test/demo/orders/ordersv1/orders.pb \
		test/demo/orders/ordersv1/orders.proto

kafka-start:
	@test/kafka/start

kafka-stop:
	@test/kafka/stop

clean:
	rm -rf $(BIN)
