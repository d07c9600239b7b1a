# edgebroker build, test and run targets. CI runs `make test` (see .ci/run).

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
DATA_DIR  ?= .data
LISTEN    ?= 127.0.0.1:1883
FUZZTIME  ?= 10s
BIN       := bin/edgebroker

export CGO_ENABLED := 0

.PHONY: all build run test test-unit test-race fuzz fuzz-short bench bench-packages bench-spill vet generate-check crash cross test-cross smoke-qemu install ipk deb clean

all: build

## build: the broker for this machine, into bin/
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/edgebroker

## run: build and start the broker on 127.0.0.1:1883 with its data in ./.data
run: build
	./$(BIN) --listen $(LISTEN) --data-dir $(DATA_DIR)

## test: vet, generated code fresh, every test with the race detector (long runs cut by
## -short), and short fuzz runs
test: vet generate-check test-race fuzz-short

vet:
	$(GO) vet ./...
	$(GO) vet -tags notls ./cmd/edgebroker
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

## generate-check: the committed msgp code is what go generate makes
generate-check:
	$(GO) generate ./...
	@git diff --exit-code -- '*_gen.go' || { echo "generated code is stale: run go generate ./... and commit"; exit 1; }

## crash: the long power-cut and kill runs (thousands of random cuts) and the 2,000-session
## spill run under a 16 MiB budget; minutes
crash:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 60m -run 'PowerCut|Crash|EachOperation|Kill|SpillOfflineBacklog' ./wal/... ./session/... ./e2e

test-race:
	CGO_ENABLED=1 $(GO) test -race -short -count=1 -timeout 20m ./...

## test-unit: quick tests without the race detector
test-unit:
	$(GO) test -short -count=1 ./...

## fuzz-short: every fuzz target for 20000 inputs each (fuzz: longer, FUZZTIME=10m). A count,
## not a duration: Go 1.26's fuzzing engine can fail a run with "context deadline exceeded"
## when a duration ends while a worker is busy (fixed in Go 1.27).
fuzz-short:
	FUZZTIME=20000x ./scripts/fuzz.sh

fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

MOSQUITTO  ?= $(shell command -v mosquitto 2>/dev/null || echo /usr/sbin/mosquitto)
BENCH_ARGS ?=

## bench: package benchmarks, then edgebroker against Mosquitto in one run (docs/BENCHMARKS.md)
bench: build bench-packages
	$(GO) run ./cmd/edgebench -edgebroker $(abspath $(BIN)) -mosquitto $(MOSQUITTO) -json bin/bench.json $(BENCH_ARGS)

bench-packages:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=1s ./codec ./limits ./session/... ./wal

## bench-spill: a 200 MB offline backlog (2,000 sessions x 100 x 1 KiB) under a 16 MiB budget,
## clients draining 50 at a time, against Mosquitto (docs/BENCHMARKS.md, issue 4)
bench-spill: build
	$(GO) run ./cmd/edgebench -edgebroker $(abspath $(BIN)) -edgebroker-args "--fsync=always --memory-limit=16MiB" \
		-mosquitto $(MOSQUITTO) -scenarios backlog -backlog-sessions 2000 -backlog-msgs 100 -payload 1024 \
		-drain-wave 50 -timeout 10m -json bin/bench-spill.json $(BENCH_ARGS)

## cross: static binaries for linux amd64, arm64, armv6, armv7, mips, mipsle into dist/
cross:
	VERSION=$(VERSION) COMMIT=$(COMMIT) ./scripts/cross.sh dist

## test-cross: codec, limits, wal, store, topic and session tests for mipsle (qemu -cpu 24Kc, no
## FPU) and armv6 (qemu -cpu arm1176) through go test -exec
test-cross:
	GO=$(GO) ./scripts/test-cross.sh

## smoke-qemu: the mipsle and armv6 brokers under qemu: persistent session, 20 QoS 1 messages,
## SIGKILL, restart, all delivered
smoke-qemu: cross
	./scripts/qemu-smoke.sh dist

## install: binary, service files and default config under DESTDIR/PREFIX
PREFIX    ?= /usr/local
install: build
	./scripts/install.sh "$(DESTDIR)" "$(PREFIX)" $(BIN)

IPK_ARCHS ?= mipsle:mipsel_24kc mips:mips_24kc armv7:arm_cortex-a7_neon-vfpv4 arm64:aarch64_generic armv6:arm_arm1176jzf-s_vfp
DEB_ARCHS ?= armv6:armhf arm64:arm64 amd64:amd64

## ipk: OpenWrt packages per architecture into dist/
ipk: cross
	@for p in $(IPK_ARCHS); do VERSION=$(VERSION) ./scripts/package-ipk.sh $${p#*:} dist/edgebroker-linux-$${p%%:*} dist || exit 1; done

## deb: Debian / Raspberry Pi OS packages into dist/
deb: cross
	@for p in $(DEB_ARCHS); do VERSION=$(VERSION) ./scripts/package-deb.sh $${p#*:} dist/edgebroker-linux-$${p%%:*} dist || exit 1; done

clean:
	rm -rf bin dist
