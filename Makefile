# Two commands for users: `make demo` and `make test`. Both set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed.stamp
APT_STAMP := $(VENV)/.apt.stamp
APT_PACKAGES := libegl1 libopengl0 libgl1-mesa-dri chromium libatomic1
export MUJOCO_GL ?= egl
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test test-fast demo bench clean

install: $(STAMP) $(APT_STAMP)

# Debian packages for offscreen MuJoCo rendering (EGL on llvmpipe) and headless Chromium (report tests).
$(APT_STAMP): | $(VENV)/bin/python
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch first (the local CPU wheel), then everything else constrained so pip cannot swap torch for CUDA.
$(STAMP): requirements-cpu.txt constraints-cpu.txt pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q --upgrade pip >/dev/null 2>&1 || true
	$(PIP) install -q -c constraints-cpu.txt torch==2.13.0
	$(PIP) install -q -c constraints-cpu.txt -r requirements-cpu.txt
	$(PIP) install -q -c constraints-cpu.txt --no-deps -e .
	@# torchvision's PyPI wheel is a CUDA build that breaks transformers next to CPU torch (facts/setup.md).
	$(PIP) uninstall -q -y torchvision timm 2>/dev/null || true
	@touch $@

# Tests that render with MuJoCo in-process run apart from those that load TensorFlow (llvmpipe segfaults
# next to TF's LLVM; see tests/conftest.py). The rendering modules are named so that their invocation does
# not even import the other test modules (some load TF at import).
RENDER_TESTS := $(addprefix tests/,test_sim_envs.py test_sim_controller.py test_sim_dr.py test_sim_experts.py test_sim_vector.py test_sim_perturbations.py test_sim_language_tasks.py)
PYTEST := $(PY) -m pytest -n 2 --timeout 900

test: install
	$(PYTEST) $(RENDER_TESTS)
	$(PYTEST) -m "not renders" tests

test-fast: install
	$(PYTEST) -m "not slow" $(RENDER_TESTS)
	$(PYTEST) -m "not renders and not slow" tests

demo: install
	$(VENV)/bin/vla-demo

bench: install
	@for b in bench/*.py; do case $$(basename $$b) in _*|common*) continue;; esac; echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) outputs .pytest_cache
