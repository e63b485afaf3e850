# Text to Texture — developer loop. Everything is installed by these targets into .venv.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BLENDER_EXT = $(VENV)/lib/python3.11/site-packages/bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py

.PHONY: venv test demo build lint bench clean

venv: $(STAMP)

$(STAMP): requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Blender's bpy 5.0 is built for Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

test: venv
	$(PY) -m pytest

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
