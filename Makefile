# Text to Texture — developer loop. Everything is installed by these targets into .venv.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BLENDER_EXT = $(VENV)/lib/python3.11/site-packages/bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py

# The oldest Blender the manifest promises, as bpy from PyPI, for `make test-compat`.
COMPAT_BPY := 4.2.23
COMPAT_VENV := .venv-4.2
COMPAT_STAMP := $(COMPAT_VENV)/.installed

# The newest Blender, as bpy from PyPI, also for `make test-compat`. bpy 5.3 is built for
# Python 3.13 only: python3.13 on PATH, else a pyenv-installed 3.13 (pyenv's python3.13 shim
# answers only while 3.13 is an active pyenv version). Looked up only when a recipe needs it.
# Without a 3.13, test-compat says so in one line and still succeeds on 5.0 and 4.2: a missing
# interpreter is the machine's, not a fault of the extension; `make test-latest` alone fails.
LATEST_BPY := 5.3.0
LATEST_VENV := .venv-5.3
LATEST_STAMP := $(LATEST_VENV)/.installed
LATEST_PYTHON ?= $(shell for p in python3.13 $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 13); print(sys.executable)' 2>/dev/null \
	&& break; done)

.PHONY: venv test test-compat test-latest demo build lint bench soak soak-series clean

venv: $(STAMP)

$(STAMP): requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Blender's bpy 5.0 is built for Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

test: venv
	$(PY) -m pytest

# The whole suite on the current Blender (5.0), the oldest supported (4.2 LTS), the newest (5.3).
test-compat: test $(COMPAT_STAMP)
	$(COMPAT_VENV)/bin/python -m pytest
	@py="$(LATEST_PYTHON)"; if [ -n "$$py" ]; then \
		$(MAKE) --no-print-directory test-latest LATEST_PYTHON="$$py"; \
	else \
		echo "skipped bpy $(LATEST_BPY): python3.13 not found (Blender 5.3 is built for Python 3.13)"; \
	fi

test-latest: $(LATEST_STAMP)
	$(LATEST_VENV)/bin/python -m pytest

$(COMPAT_STAMP):
	test -x $(COMPAT_VENV)/bin/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COMPAT_VENV)/bin/python -m pip install --quiet bpy==$(COMPAT_BPY) pytest==9.2.0
	touch $(COMPAT_STAMP)

$(LATEST_STAMP):
	@test -n "$(LATEST_PYTHON)" || { echo "need Python 3.13 (Blender's bpy 5.3 is built for it)"; exit 1; }
	test -x $(LATEST_VENV)/bin/python || $(LATEST_PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet bpy==$(LATEST_BPY) pytest==9.2.0
	touch $(LATEST_STAMP)

demo: venv
	$(PY) demo/run_demo.py

build: venv
	$(PY) $(BLENDER_EXT) validate .
	mkdir -p dist
	$(PY) $(BLENDER_EXT) build --source-dir . --output-dir dist

lint: venv
	$(VENV)/bin/ruff check .
	rm -rf build/typecheck && mkdir -p build/typecheck && ln -s ../.. build/typecheck/text_to_texture
	cd build/typecheck && ../../$(VENV)/bin/mypy -p text_to_texture

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf dist build demo/out .pytest_cache .mypy_cache .ruff_cache

# The extension in the real Blender window (Debian's Blender 4.3 on a virtual screen, via
# ../shared/tools/real-blender beside the checkout): sidebar, button, modal timer, Esc.
# `setup` is a no-op once done (the first time takes ~4 min). Screenshots go to build/gui/.
.PHONY: test-gui
test-gui: venv
	../shared/tools/real-blender setup
	$(PY) tests/gui/run_gui.py
# One soak run: its seed is printed first, and a failing run's whole log is kept under
# build/soak/ (its path printed). SOAK_SEED=<seed> replays a run; SOAK_HOG=1 replays it with
# the CPU hogs a hogged run of a series had.
SOAK_HOG ?= 0
soak: venv
	$(PY) tools/soak_series.py --runs 1 --hog $(SOAK_HOG)

# A series of soak runs, SOAK_HOGS of them with a CPU hog per core beside them (stopped after
# each run); every failure's seed and log are kept; one summary line at the end.
SOAK_RUNS ?= 50
SOAK_HOGS ?= 10
soak-series: venv
	$(PY) tools/soak_series.py --runs $(SOAK_RUNS) --hog $(SOAK_HOGS)
