# Two commands: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint fuzz setup bench bench-docs vectors conformance killtest tour wheel-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of PyTorch (an unpinned torch pulls a multi-GB CUDA build).
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all]'
	# DCMTK, GDCM and dicom3tools (dciodvfy): the DICOM-native tests check our files with them.
	# Chromium: the web viewer's browser tests drive it through Playwright (no browser download).
	# Orthanc with its Python and DICOMweb plugins: the encrypted storage area's tests run a real one
	# (docs/ORTHANC.md); the packaged service is stopped, the tests start their own on loopback.
	@if ! command -v dcmdump >/dev/null || ! command -v gdcminfo >/dev/null || ! command -v dciodvfy >/dev/null \
			|| ! command -v chromium >/dev/null || [ ! -x /usr/sbin/Orthanc ] \
			|| [ ! -e /usr/share/orthanc/plugins/libOrthancPython.so ] \
			|| [ ! -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq || true; \
			for package in dcmtk libgdcm-tools dicom3tools chromium orthanc orthanc-python orthanc-dicomweb; do \
				apt-get install -y -qq $$package >/dev/null || echo "note: installing $$package failed; its tests will skip"; \
			done; \
			if command -v service >/dev/null; then service orthanc stop >/dev/null 2>&1 || true; fi; \
		else echo "note: dcmtk/libgdcm-tools/dicom3tools/chromium/orthanc missing and not installable here; their tests skip (and fail under CI=true)"; fi; \
	fi
	touch $(STAMP)

setup: $(STAMP)

# The end-to-end demo on bundled data, then a short tour of the clinical service (docs/SERVICE.md).
demo: $(STAMP)
	$(BIN)/kedi demo --out demo-out --force
	$(BIN)/python docs/scripts/service_tour.py --out demo-out/service

# Lint failing is a test failing: ruff's rules, ruff's formatting and mypy (settings in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Two xdist workers. Each collects its garbage before reporting finished (tests/worker_shutdown.py):
# execnet interrupts a worker that is still busy 5 s after the run ends.
test: lint
	$(BIN)/python -m pytest -n 2 -q

# The DICOM-native sweep alone (it is also part of `make test`): every pydicom and pydicom-data
# test file, and DCMTK's big-endian, deflated, RLE and JPEG-LS copies, through --as-dicom and dciodvfy.
conformance: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q tests/cipher/test_dicom_native_conformance.py

# Hostile-input harness: 1,500 seeded crafted inputs against every command (tests/hostile/harness.py).
# No traceback, exit codes 0/2/3/4/5 only, no hang, peak RSS < 1 GiB; summary in bench/out/hostile/.
FUZZ_SEED ?= 0
FUZZ_CASES ?= 1500
fuzz: $(STAMP)
	$(BIN)/python tests/hostile/harness.py --cases $(FUZZ_CASES) --seed $(FUZZ_SEED) --workers 2 --out bench/out/hostile

# Benchmarks print their tables; whatever they write goes under bench/out/ (ignored by git), so a
# run never changes a tracked file. The measurement pages committed under docs/ change only
# through `make bench-docs`.
bench: $(STAMP)
	$(BIN)/python bench/bench_zigzag.py
	$(BIN)/python bench/bench_cipher.py
	$(BIN)/python bench/bench_metrics.py
	$(BIN)/python bench/bench_nist.py
	$(BIN)/python bench/bench_ripplet.py
	$(BIN)/python bench/bench_despeckle.py
	$(BIN)/python bench/bench_zzgan.py
	$(BIN)/python bench/bench_large.py
	$(BIN)/python bench/bench_keystore.py
	$(BIN)/python bench/bench_service.py
	$(BIN)/python bench/bench_orthanc.py
	$(BIN)/python bench/bench_batch.py
	$(BIN)/python bench/bench_cluster.py

# Regenerate the measurement pages committed under docs/ on this machine, then review the diff:
# docs/zzgan_keys.md (about 2 min on 2 cores), docs/despeckle_comparison.md, .csv and
# docs/figures/despeckle_comparison.png (about 2 min), docs/zzgan_ablation.md (about 11 min),
# docs/service_bench.md (about 4 min: `kedi serve` ingest and 20 viewers),
# docs/orthanc_bench.md (about 5 min: storescu of 200 CT slices to plain Orthanc, Orthanc with the
# deepkedi storage area and `kedi dicom-node`), docs/batch_bench.md (about 3 min: folder runs beside
# gdcmanon, and 5,000 small files on the disk and on tmpfs).
bench-docs: $(STAMP)
	$(BIN)/python bench/bench_zzgan.py --out docs/zzgan_keys.md
	$(BIN)/python bench/compare_despeckle.py --out docs
	$(BIN)/python bench/ablation_zzgan.py --out docs/zzgan_ablation.md
	$(BIN)/python bench/bench_service.py --out docs/service_bench.md
	$(BIN)/python bench/bench_orthanc.py --out docs/orthanc_bench.md
	$(BIN)/python bench/bench_batch.py --out docs/batch_bench.md

vectors: $(STAMP)
	$(BIN)/python tests/vectors/generate.py

# SIGKILL `kedi encrypt` and `kedi decrypt` at 20 random points each of a 500 MiB volume: no output
# under the final name, no part file readable by others, stale parts removed by the next run.
# Then a 480-file folder run, killed whole (command and workers) at 12 random points each way and
# resumed: every file done once, byte-exact, no part file left (a few minutes; `make test` runs
# reduced versions of both).
killtest: $(STAMP)
	$(BIN)/python tests/killtest.py --mib 500 --kills 20
	$(BIN)/python tests/batch_killtest.py --series 80 --kills 12

# docs/TOUR.md: README.md followed command by command in an empty folder, with every output.
tour: $(STAMP)
	$(BIN)/python docs/scripts/run_docs.py --tour docs/TOUR.md

# Build the wheel and follow docs/INSTALL.md as a pip user, in fresh virtual environments under a
# mktemp folder: the core install (Quick start, demo, one-line errors for missing extras), then
# PyTorch's CPU build and `[all]` (WHEEL_CHECK_ALL=0 skips that part). Fails on any traceback.
wheel-check:
	.ci/wheel-check $(PYTHON)

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis .mypy_cache .ruff_cache
