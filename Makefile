# keel's front door. CMake does the building; this file only names the jobs.
#   make            release build: build/libkeel.so, build/libkeel.a, build/keel
#   make demo       build, then run the bundled workload on glibc and on keel
#   make test       every test, release and checked builds; ends "N passed, N failed"
#   make install PREFIX=/usr/local
#   make bench [QUICK=1] [ONLY=name] [ALLOCATORS="glibc keel ..."]
#   make wasm       build/wasm/libkeel-emscripten.a, libkeel-emscripten-mt.a (-pthread) and libkeel-wasi.a
BUILD   ?= build
PREFIX  ?= /usr/local
CMAKE   ?= cmake
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
MAKEFLAGS += --no-print-directory

.PHONY: all build checked demo test install bench wasm stress fuzz check-san clean

all: build

build:
	@$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@$(CMAKE) --build $(BUILD) -j $(JOBS)

checked:
	@$(CMAKE) -S . -B build-checked -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEEL_CHECKED=ON >/dev/null
	@$(CMAKE) --build build-checked -j $(JOBS)

demo: build
	@bash tools/demo.sh $(BUILD)

test:
	@bash tools/test.sh

install: build
	@$(CMAKE) --install $(BUILD) --prefix $(PREFIX)

bench: build
	@bash bench/bench.sh

wasm:
	@bash tools/wasm.sh

stress: build
	@bash tools/stress.sh

fuzz:
	@bash tools/fuzz.sh

check-san:
	@bash tools/check-san.sh

clean:
	rm -rf build build-checked build-*
