# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export ANNY_CACHE_DIR  ?= $(CURDIR)/.cache/anny
export WARP_CACHE_PATH ?= $(CURDIR)/.cache/warp
export XDG_CACHE_HOME  ?= $(CURDIR)/.cache/xdg
export MPLCONFIGDIR    ?= $(CURDIR)/.cache/matplotlib

.PHONY: install browser test demo lint bench clean real-videos

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first: the local CPU build; any later requirement it satisfies installs nothing more.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,pose,video,onnx,app]'
	touch $(STAMP)

# The report test opens HTML in headless Chromium (Debian's `chromium`) and the web app test drives
# it with selenium (`chromium-driver`); installed when missing (as root, or with sudo). Set
# POSETRANSFER_SKIP_BROWSER_TESTS=1 to skip those tests instead.
browser:
	@if [ -z "$$POSETRANSFER_SKIP_BROWSER_TESTS" ] && \
			! { command -v chromium && command -v chromedriver; } >/dev/null; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		echo "installing Debian's chromium and chromium-driver for the browser tests"; \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
			>/dev/null; \
	fi

test: install browser
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/posetransfer demo

# Real people on video (BSD-3 demo videos from the pose2sim and sports2d wheels) in .cache/real.
real-videos: install
	$(PY) benchmarks/real_videos.py

lint: install
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache demo_out
