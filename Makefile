# edgegw — see README.md. Everything here needs only Go; .ci/run adds the
# interop checks that need Debian packages.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
PKGS    := ./...

.PHONY: all build devstack run test lint vet fmt-check unit bench check-configs tail clean

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

## bench: the Go benchmarks of the hot paths, then end to end (see BENCHMARKS.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./gateway/reading ./buffer ./uplink ./rules ./drivers/...
	$(GO) test -run '^$$' -bench 'Ceiling|EndToEnd' -benchtime 30000x -count 3 ./gateway

## tail: print the readings topic of the demo as it arrives
tail: build
	bin/edgegw tail --topic plant.readings

clean:
	rm -rf bin dist .devstack
