# Mus2Pic — the two commands of the Quick start, and a few more.
#   make run    install what is missing, build, run the main job on embedded defaults
#   make test   install, build with ASan + UBSan, run the whole suite
JOBS ?= $(shell nproc)
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz

.PHONY: all deps deps-test build build-asan run test test-fast bench fuzz format tidy clean scale-demo

all: build

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD_ASAN)/build.ninja:
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DM2P_SANITIZE=ON -DM2P_WERROR=ON

build-asan: deps-test $(BUILD_ASAN)/build.ninja
	cmake --build $(BUILD_ASAN) -j $(JOBS)

run: build
	@scripts/run-demo.sh $(BUILD)/mus2pic

test: build-asan build
	@scripts/run-tests.sh $(BUILD_ASAN)
	@scripts/valgrind-cli.sh $(BUILD)/mus2pic

bench: build
	@scripts/run-bench.sh $(BUILD)

# the scale-out story of docs/deploy.md on this machine: private PostgreSQL + Redis, 2 API
# instances, 2 workers, a worker killed mid-job, Redis restarted, checks from both instances
# (needs the postgresql, redis-server and curl packages; DEMO_ARGS=--routed: 1 cpu + 2 gpu workers)
scale-demo: build
	@scripts/install-deps.sh --services
	@scripts/scale-demo.sh $(DEMO_ARGS) $(BUILD)/mus2pic

fuzz: deps-test
	cmake -S . -B $(BUILD_FUZZ) -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DM2P_FUZZ=ON
	cmake --build $(BUILD_FUZZ) -j $(JOBS)
	@for f in $(BUILD_FUZZ)/fuzz/fuzz_*; do \
	  n=$$(basename $$f); c=tests/fuzz/corpus/$${n#fuzz_}; mkdir -p $$c; \
	  echo "== $$n (60 s)"; $$f -max_total_time=$${FUZZ_SECONDS:-60} -max_len=65536 $$c || exit 1; done

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c')

tidy: $(BUILD)/build.ninja
	clang-tidy -p $(BUILD) $$(git ls-files 'src/*.c') 2>/dev/null

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
