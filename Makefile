# lowbit — the two commands of the README:
#   make demo   installs dependencies, builds in Release, runs the main job on the shared model
#   make test   builds and runs the whole test suite
BUILD ?= build
JOBS ?= 2
SHARED ?= ../shared
LOWBIT = $(BUILD)/lowbit

.PHONY: setup build demo test fuzz clean format

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	bash scripts/demo.sh $(LOWBIT) $(SHARED)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 1 --timeout 1800

FUZZ_SECONDS ?= 60
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD)
