# edgegw — see README.md. Everything here needs only Go, except bench-arm64
# (Debian's qemu-user and gcc); .ci/run adds the interop checks that need
# Debian packages.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# Evaluated once, so that every target of one make run stamps the same.
VERSION := $(VERSION)
COMMIT  := $(COMMIT)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
PKGS    := ./...

.PHONY: all build devstack run test lint vet fmt-check unit bench bench-parts bench-e2e bench-arm64 wear soak check-configs tail cross deb clean

all: build

## build: the host binary at bin/edgegw
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/edgegw ./gateway/cmd/edgegw

devstack:
	$(GO) build -o bin/devstack ./scripts/devstack

## run: the demo — dev Kafka + MQTT + the gateway on a simulated press line
run: build devstack
	./scripts/demo

## test: formatting, vet, and every test with the race detector
test: fmt-check vet unit check-configs

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags chromium ./gateway/ # the browser tests .ci/run runs

unit:
	$(GO) test -race -count=1 -timeout 240s $(PKGS)

## check-configs: edgegw check on every gateway file under firmware-config/
## (and every *.defaults.yaml through a gateway that includes it)
check-configs: build
	@scripts/check-configs

## bench: the Go benchmarks of the parts, the built gateway end to end at
## rising rates (bench-e2e), the same on arm64 as instruction counts
## (bench-arm64), then the spool's SD card wear (see BENCHMARKS.md)
bench: bench-parts bench-e2e bench-arm64 wear

## bench-parts: the Go benchmarks of the hot paths (spool, rules, uplink,
## JSON, MQTT), the in-process end-to-end ones and the pipeline alone
bench-parts:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./gateway/reading ./buffer ./uplink ./rules ./drivers/...
	$(GO) test -run '^$$' -bench 'Ceiling|EndToEnd' -benchtime 30000x -count 3 ./gateway
	$(GO) test -run '^$$' -bench Pipeline -benchtime 200000x -benchmem -count 5 ./gateway

## bench-e2e: bin/edgegw in its own process, MQTT (embedded mochi-mqtt, then
## Debian's mosquitto with its stock limits when installed) → rules → spool →
## Kafka (kfake), 1,000 sensors and 200 rules, at rising rates until it stops
## keeping up (QoS 0 through mosquitto twice: as the kernel schedules it, and
## with mosquitto on a CPU of its own, -broker-cpu); then a steady 10,000
## readings/s at QoS 1 through mosquitto that must lose nothing. STEP is how
## long each rate is held.
STEP ?= 10s
RATES ?= 5000,10000,12000,14000,16000,18000,20000,23000,26000,30000,34000,38000,43000,48000,54000,60000,67000,75000,84000,94000
bench-e2e: build
	$(GO) build -o bin/edgegw-bench ./gateway/cmd/edgegw-bench
	bin/edgegw-bench -broker mochi -qos 0 -step $(STEP) -rates $(RATES)
	bin/edgegw-bench -broker mochi -qos 1 -step $(STEP) -rates $(RATES)
	@if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then \
		bin/edgegw-bench -broker mosquitto -qos 0 -step $(STEP) -rates $(RATES) && \
		{ [ "$$(nproc)" -lt 2 ] || bin/edgegw-bench -broker mosquitto -qos 0 -step $(STEP) -rates $(RATES) -broker-cpu 1; } && \
		bin/edgegw-bench -broker mosquitto -qos 1 -step $(STEP) -rates $(RATES) && \
		bin/edgegw-bench -broker mosquitto -qos 1 -step 30s -rates 10000 -ceiling=false -require-rate 10000; \
	else echo "bench-e2e: mosquitto not installed (apt-get install mosquitto): its runs skipped"; fi

## bench-arm64: the end-to-end and hot-path benchmarks of the linux/arm64
## build under qemu-user (-cpu cortex-a53) as guest instructions per op,
## checked against scripts/bench/arm64-insns.baseline (needs Debian's
## qemu-user and gcc; about 1.5 minutes)
bench-arm64:
	GO='$(GO)' scripts/bench/arm64-insns

## wear: bytes the spool writes per hour at 1,000 readings/s, durable and
## outage mode, Kafka up and down (WEAR=60s per scenario; about 7 minutes)
WEAR ?= 60s
wear:
	EDGEGW_WEAR=$(WEAR) $(GO) test -count=1 -timeout 30m -run '^TestWear$$' -v ./buffer

## soak: the kill -9 test with 300 kills (about two minutes)
soak:
	EDGEGW_KILL9_ITERATIONS=$${EDGEGW_KILL9_ITERATIONS:-300} $(GO) test -count=1 -timeout 30m -run 'TestCrashKill9' ./gateway/cmd/edgegw/

## tail: print the readings topic of the demo as it arrives
tail: build
	bin/edgegw tail --topic plant.readings

## cross: static binaries for the gateways in dist/ (DIST), and dist/SHA256SUMS:
## edgegw_linux_armv6 (every 32-bit Raspberry Pi OS), _armv7, _arm64, _amd64.
## Reproducible: the same source gives the same bytes. VERSION and COMMIT are
## stamped; nothing else varies (-trimpath, no build ID, no VCS stamp: Go's
## vcs.modified would flip with any untracked file in the checkout).
DIST          ?= dist
CROSS_TARGETS ?= armv6 armv7 arm64 amd64
cross:
	@mkdir -p $(DIST)
	@set -e; for t in $(CROSS_TARGETS); do \
		case $$t in \
		armv6|armv7) arch=arm; goarm=$${t#armv} ;; \
		arm64|amd64) arch=$$t; goarm= ;; \
		*) echo "cross: unknown target $$t (armv6 armv7 arm64 amd64)" >&2; exit 2 ;; \
		esac; \
		echo "cross: $(DIST)/edgegw_linux_$$t"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOARM=$$goarm GOAMD64=v1 GOARM64=v8.0 \
			$(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS) -buildid=' \
			-o $(DIST)/edgegw_linux_$$t ./gateway/cmd/edgegw; \
	done
	cd $(DIST) && sha256sum $(addprefix edgegw_linux_,$(CROSS_TARGETS)) > SHA256SUMS

## deb: Debian packages dist/edgegw_<DEB_VERSION>_<arch>.deb for armhf (the
## armv6 binary), arm64 and amd64, with nfpm (go tool nfpm) from the `cross`
## binaries; contents and maintainer scripts in scripts/packaging/. DEB_VERSION
## is VERSION in Debian form (scripts/packaging/debversion): set VERSION, not
## DEB_VERSION, so that `edgegw version` names the package's version.
DEB_ARCHES        ?= armhf arm64 amd64
DEB_VERSION        = $(shell scripts/packaging/debversion '$(VERSION)')
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
deb: cross
	@set -e; nfpm=$$($(GO) tool -n nfpm); dist='$(abspath $(DIST))'; \
	for a in $(DEB_ARCHES); do \
		case $$a in \
		armhf) bin=armv6 ;; \
		arm64|amd64) bin=$$a ;; \
		*) echo "deb: unknown arch $$a (armhf arm64 amd64)" >&2; exit 2 ;; \
		esac; \
		stage=$$dist/.deb-$$a; rm -rf "$$stage"; mkdir -p "$$stage"; \
		cp "$$dist/edgegw_linux_$$bin" "$$stage/edgegw"; \
		cp scripts/packaging/nfpm.yaml scripts/packaging/edgegw.service scripts/packaging/sysusers.conf \
			scripts/packaging/config.yaml scripts/packaging/deb/postinst scripts/packaging/deb/prerm \
			scripts/packaging/deb/postrm "$$stage/"; \
		rm -f "$$dist"/edgegw_*_$$a.deb; \
		echo "deb: $(DIST)/edgegw_$(DEB_VERSION)_$$a.deb"; \
		(cd "$$stage" && EDGEGW_DEB_ARCH=$$a EDGEGW_DEB_VERSION='$(DEB_VERSION)' \
			SOURCE_DATE_EPOCH='$(SOURCE_DATE_EPOCH)' "$$nfpm" package --packager deb \
			--config nfpm.yaml --target "$$dist/edgegw_$(DEB_VERSION)_$$a.deb" >/dev/null); \
		rm -rf "$$stage"; \
	done

clean:
	rm -rf bin dist .devstack
