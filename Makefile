# posetok — the two commands a new machine needs are `make demo` and
# `make test`; both run `make setup` first, which installs what is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PY := .venv/bin/python
QEMU_CPU ?= cortex-a76
export POSETOK_QEMU_CPU ?= $(QEMU_CPU)

.PHONY: setup check lint test host-test device-test device-install remeasure demo kernels-host kernels-aarch64 kernels-ctest kernels-bench wheel clean help

help:
	@echo "make setup        install everything missing (apt, .venv, aarch64 Python)"
	@echo "make test         setup, host tests, C tests (host + QEMU), device tests"
	@echo "make check        the fast loop: lint + host tests without export, QEMU or slow ones"
	@echo "make lint         ruff over the Python, clang-format --dry-run over kernels/"
	@echo "make demo         setup, then the end-to-end demo"
	@echo "make device-test  the device suite inside the emulated aarch64 Python"
	@echo "make remeasure    every figure quoted from the shipped estimator weights, measured again"
	@echo "make wheel        host and aarch64 wheels into dist/"
	@echo "make kernels-bench  guest instructions per pixel of every kernel under QEMU"

setup:
	@bash cross/setup.sh

# The fast loop (under 2 minutes warm): lint, then the host tests that need no
# model export, no QEMU and no more than a few seconds each. The markers are
# applied by tests/host/conftest.py; test_wheel needs the aarch64 library.
FAST_MARKERS := not slow and not qemu and not export
check: lint kernels-aarch64
	@echo "== host tests: -m \"$(FAST_MARKERS)\""
	$(PY) -m pytest tests/host -q -m "$(FAST_MARKERS)"

# Lint: ruff (rules and excludes in [tool.ruff] of pyproject.toml) and
# clang-format (style in the nearest .clang-format) over the C library.
LINT_PY := sdk converters tests cross
lint: setup
	@echo "== lint: ruff check $(LINT_PY)"
	.venv/bin/ruff check $(LINT_PY)
	@echo "== lint: clang-format --dry-run --Werror kernels/"
	clang-format --dry-run --Werror $$(find kernels -name '*.[ch]' -not -path '*/build/*' | sort)

test: setup
	@$(MAKE) --no-print-directory kernels-ctest
	@$(MAKE) --no-print-directory host-test
	@$(MAKE) --no-print-directory device-test

host-test:
	@echo "== host test suite"
	$(PY) -m pytest tests/host -q --durations=10

# The device suite runs against the installed aarch64 wheel, not the source
# tree, once with ai-edge-litert + onnxruntime and once more (LiteRT tests
# only) with tflite-runtime 2.14 and numpy<2, as boards in the field carry either.
DEVICE_SITE := build/device-site
AARCH64_ROOT = $(shell python3 cross/build_sysroot.py --print-root)
DEVICE_PYTHON_TEST := cross/qemu-python -m pytest -q -p no:cacheprovider
DEVICE_PYTEST := $(DEVICE_PYTHON_TEST) tests/device --durations=10
DEVICE_ENV = POSETOK_DEVICE_PYTHONPATH=$(CURDIR)/$(DEVICE_SITE) POSETOK_EXPECT_WHEEL=1
DEVICE_ENV_LITERT = $(DEVICE_ENV) POSETOK_EXPECT_LITERT=ai-edge-litert
DEVICE_ENV_TFLITE = $(DEVICE_ENV) POSETOK_EXPECT_LITERT=tflite-runtime POSETOK_AARCH64_SITE=$(AARCH64_ROOT)/site-tflite

device-install: wheel
	rm -rf $(DEVICE_SITE)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --target $(DEVICE_SITE) \
	  --only-binary=:all: --implementation cp --python-version 3.11 \
	  --platform manylinux_2_17_aarch64 dist/posetok-*-manylinux_2_17_aarch64.whl

device-test: device-install
	@echo "== device test suite (emulated aarch64 Python, -cpu $(POSETOK_QEMU_CPU), ai-edge-litert + onnxruntime)"
	$(DEVICE_ENV_LITERT) $(DEVICE_PYTEST)
	@echo "== device test suite, LiteRT part (tflite-runtime 2.14, numpy<2)"
	$(DEVICE_ENV_TFLITE) $(DEVICE_PYTEST) -m litert

# Every figure the README and the tests' comments quote from the shipped estimator weights, measured again (about
# 20 minutes on 2 cores): run it after shipping new weights. Each step's output also lands in build/remeasure/.
# The host tests export build/host-results/bundle and save the host's results that the device tests compare
# against; the README's parity table and presence models come from the full export into build/bundle.
REMEASURE := build/remeasure
REMEASURE_HOST_TESTS := tests/host/test_device_estimator.py tests/host/test_estimator_export.py \
  tests/host/test_estimator.py::test_shipped_estimator_holds_its_figures_on_held_out_frames \
  tests/host/test_estimator.py::test_eval_estimator_flip_and_shift_tests_measure_their_keypoints_on_every_set \
  tests/host/test_pose_estimator.py::test_video_mode_finds_the_shipped_estimators_figure_again_after_losing_it
remeasure: device-install
	mkdir -p $(REMEASURE)
	@echo "== held-out figures and the person box's share of the crop"
	$(PY) -m posetok eval-estimator --json --shares 0.35,0.42,0.5,0.58,0.67 | tee $(REMEASURE)/eval.json
	@echo "== the same figures with the flip test (the crop and its mirror image, averaged)"
	$(PY) -m posetok eval-estimator --json --flip-test | tee $(REMEASURE)/eval-flip-test.json
	@echo "== with the shift test (the crop and two moved crops, averaged), then with both"
	$(PY) -m posetok eval-estimator --json --shift-test | tee $(REMEASURE)/eval-shift-test.json
	$(PY) -m posetok eval-estimator --json --flip-test --shift-test | tee $(REMEASURE)/eval-flip-and-shift-tests.json
	@echo "== on plain scenes, the calibration trial's kind of frame"
	$(PY) -m posetok eval-estimator --json --scenes plain | tee $(REMEASURE)/eval-plain-scenes.json
	@echo "== breakdown (and docs/estimator_breakdown.png)"
	$(PY) -m posetok eval-estimator --breakdown --plot docs/estimator_breakdown.png | tee $(REMEASURE)/breakdown.txt
	@echo "== the shift test's move, swept on fresh frames"
	$(PY) -m posetok study-estimator shift-sweep --json | tee $(REMEASURE)/shift-sweep.json
	@echo "== the host tests that quote figures (export included)"
	$(PY) -m pytest -q -s -p no:cacheprovider $(REMEASURE_HOST_TESTS) | tee $(REMEASURE)/host-tests.txt
	@echo "== export: parity rows and presence models of every file"
	$(PY) -m posetok export --out build/bundle --force | tee $(REMEASURE)/export.txt
	$(PY) -m posetok info build/bundle | tee $(REMEASURE)/bundle.txt
	@echo "== video mode's searches while tracking still figures, and presence on crops holding part of a figure"
	$(PY) -m posetok study-estimator video-margins --json | tee $(REMEASURE)/video-margins.json
	$(PY) -m posetok study-estimator partial-figures --json | tee $(REMEASURE)/partial-figures.json
	@echo "== demo rows"
	$(PY) -m posetok_converters.demo --bundle build/bundle | tee $(REMEASURE)/demo.txt
	@echo "== the estimator on the emulated board (ai-edge-litert + onnxruntime, then tflite-runtime's int8)"
	$(DEVICE_ENV_LITERT) $(DEVICE_PYTHON_TEST) -s tests/device/test_estimator_device.py | tee $(REMEASURE)/device.txt
	$(DEVICE_ENV_TFLITE) $(DEVICE_PYTHON_TEST) -s tests/device -m litert -k int8_within \
	  | tee $(REMEASURE)/device-tflite-int8.txt

# Wheels: the host one (runtime + converters, x86_64 kernels) and the device
# one (runtime only, NEON kernels built by the aarch64 gcc toolchain).
wheel: kernels-host kernels-aarch64
	$(PY) cross/build_wheel.py --arch x86_64 --lib build/host/libposetok_kernels.so --with-converters
	$(PY) cross/build_wheel.py --arch aarch64 --lib build/aarch64-gcc/libposetok_kernels.so
	$(PY) -m auditwheel show dist/posetok-*-manylinux_2_17_aarch64.whl | tee build/auditwheel.txt
	grep -q 'platform tag: "manylinux_2_17_aarch64"' build/auditwheel.txt

demo: setup
	@$(MAKE) --no-print-directory device-install
	@$(PY) cross/chain_report.py
	@$(PY) -m posetok_converters.demo

# Kernel library: reference C on the host, NEON on aarch64 (gcc and clang).
KERNEL_TOOLCHAINS := gcc clang
kernels-host:
	cmake -S kernels -B build/host -DCMAKE_BUILD_TYPE=Release > /dev/null
	cmake --build build/host -j2 > /dev/null
	mkdir -p sdk/posetok/lib/x86_64
	cp build/host/libposetok_kernels.so sdk/posetok/lib/x86_64/libposetok_kernels.so.tmp
	mv sdk/posetok/lib/x86_64/libposetok_kernels.so.tmp sdk/posetok/lib/x86_64/libposetok_kernels.so

kernels-aarch64:
	for tc in $(KERNEL_TOOLCHAINS); do \
	  cmake -S kernels -B build/aarch64-$$tc -DCMAKE_BUILD_TYPE=Release \
	    -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cross/toolchain-aarch64-$$tc.cmake > /dev/null; \
	  cmake --build build/aarch64-$$tc -j2 > /dev/null; \
	done
	mkdir -p sdk/posetok/lib/aarch64
	cp build/aarch64-gcc/libposetok_kernels.so sdk/posetok/lib/aarch64/libposetok_kernels.so.tmp
	mv sdk/posetok/lib/aarch64/libposetok_kernels.so.tmp sdk/posetok/lib/aarch64/libposetok_kernels.so

# ctest: the hello-NEON chain probe and the kernel C tests, host (incl. an
# ASan+UBSan build) and both aarch64 toolchains under QEMU. Also leaves the
# aarch64 library in sdk/posetok/lib/aarch64 for the device suite.
kernels-ctest: kernels-host kernels-aarch64
	@echo "== C tests"
	for tc in gcc clang; do \
	  cmake -S cross/hello-neon -B build/hello-neon-$$tc \
	    -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cross/toolchain-aarch64-$$tc.cmake > /dev/null; \
	  cmake --build build/hello-neon-$$tc > /dev/null; \
	  (cd build/hello-neon-$$tc && ctest --output-on-failure); \
	done
	cmake -S kernels -B build/host-asan -DCMAKE_BUILD_TYPE=Debug -DPOSETOK_SANITIZE=ON > /dev/null
	cmake --build build/host-asan -j2 > /dev/null
	for b in host host-asan $(addprefix aarch64-,$(KERNEL_TOOLCHAINS)); do \
	  echo "-- kernels ctest: $$b"; \
	  (cd build/$$b && ctest --output-on-failure); \
	done

# Full kernel benchmark (about 5 minutes): guest instructions per pixel under
# QEMU, paired timings, OpenCV's aarch64 build as the peer, and a bar chart.
# Host-only: the bench lives in posetok_converters/kernels_bench.py.
kernels-bench: kernels-aarch64
	mkdir -p build/kernels-bench
	$(PY) -m posetok kernels-bench --json --check-count --plot build/kernels-bench/insn_per_px.png > build/kernels-bench/kernels.json
	@echo "wrote build/kernels-bench/kernels.json and insn_per_px.png"

clean:
	rm -rf build dist sdk/posetok/lib
