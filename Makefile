# The two commands of the README's quick start, and a few conveniences.
#
#   make run     install dependencies, build, start the platform locally
#   make test    install dependencies, build with ASan+UBSan, run every test
#   make bench   build optimised and run the benchmarks in tests/bench/
#   make up      the platform in containers: base image if missing, compose up --build
#   make images  barista-sdk and barista-runtime, the images a service's Dockerfile uses

JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Compose v2 (`docker compose`) where installed, else Compose v1.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.PHONY: all deps build run test bench up images format clean

all: build

deps:
	@sh deploy/install-deps.sh

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build -j $(JOBS)

run: build
	build/bin/barista-gateway --local

test: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBARISTA_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure --timeout 600 -j $(JOBS)

bench: build
	@sh deploy/install-deps.sh bench
	sh tests/bench/run.sh

up:
	sh deploy/base-image.sh
	$(COMPOSE) up --build

images:
	sh deploy/images.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan
