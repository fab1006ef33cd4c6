"""Shared pytest fixtures.

`shared_dir` finds the project's shared reference material (fixtures from other projects' code, real
published data, facts). It is `../shared` next to the checkout unless `VLA_SHARED_DIR` says otherwise;
where it is absent (a user's clone) the tests that need it skip and say why. In CI it is always there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ros2_env

REPO_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# ROS 2 / DDS never leaves loopback in tests, and ROS 2 processes log to a temp dir (tests/ros2_env.py).
os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOCALHOST_ONLY="1")
os.environ.setdefault("ROS_LOG_DIR", str(ros2_env.ROS_LOG_DIR))


def _shared_dir() -> Path:
    return Path(os.environ.get("VLA_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = _shared_dir()
    if not path.is_dir():
        pytest.skip(
            f"shared reference material not found at {path} (set VLA_SHARED_DIR to its location); "
            "it holds the OpenVLA golden fixtures and the real bridge RLDS data"
        )
    return path


@pytest.fixture(scope="session")
def bridge_dataset_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "bridge_dataset" / "1.0.0"
    if not (path / "features.json").is_file():
        pytest.skip(f"real bridge RLDS data not found at {path}")
    return path


@pytest.fixture(scope="session")
def openvla_fixture_dir(shared_dir: Path) -> Path:
    path = shared_dir / "fixtures" / "openvla_reference" / "tiny_openvla_a"
    if not (path / "reference_io.safetensors").is_file():
        pytest.skip(f"OpenVLA golden fixture not found at {path}")
    return path


@pytest.fixture(scope="session")
def tiny_rlds_dataset(tmp_path_factory) -> Path:
    """A small RLDS dataset written by `vla.data.rlds_writer` (train: 6 episodes in 3 shards, val: 2;
    32x32 JPEG `primary` + `wrist`, 8-D state, 7-14 steps per episode). Read-only: copy it to modify."""
    from vla.data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(
        tmp_path_factory.mktemp("rlds"), "tiny_sim", splits={"train": 6, "val": 2}, num_steps=10, episodes_per_shard=2
    )


# --- TensorFlow and MuJoCo's software renderer must not share a process -------------------------------
# Once TensorFlow is loaded, Mesa's llvmpipe (MuJoCo's offscreen renderer on a CPU) segfaults: its LLVM
# calls land in the LLVM copy inside libtensorflow_framework.so. Library code avoids it (collection renders
# in worker processes, evaluation switches to subprocess envs when TF is loaded). In the test suite, tests
# that render in the pytest process carry the `renders` marker and run in their own pytest invocation
# (`make test` runs the modules below by name first - keep its RENDER_TESTS in sync - then `-m "not renders"`),
# so no xdist worker ever holds both.
RENDERING_MODULES = {
    "test_sim_envs.py", "test_sim_controller.py", "test_sim_dr.py", "test_sim_experts.py",
    "test_sim_vector.py", "test_sim_perturbations.py", "test_sim_language_tasks.py", "test_robots.py",
}  # keep in step with the Makefile's RENDER_TESTS


def pytest_configure(config):
    config.addinivalue_line("markers", "renders: renders with MuJoCo in the pytest process (never next to TensorFlow)")
    config.addinivalue_line("markers", "ros: needs rclpy in the pytest process: make test runs them under .venv-ros "
                                       "(tests/ros2_env.py)")


def pytest_collection_modifyitems(config, items):
    ros_skip = None
    for item in items:
        if item.path.name in RENDERING_MODULES:
            item.add_marker(pytest.mark.renders)
        if item.get_closest_marker("ros") is not None and not ros2_env.rclpy_here():
            ros_skip = ros_skip or pytest.mark.skip(reason=ros2_env.not_here_reason())
            item.add_marker(ros_skip)


@pytest.fixture(scope="session")
def ros_python() -> str:
    """An interpreter with a real rclpy, for genuine ROS 2 processes (tests/ros2_env.py)."""
    py = ros2_env.ros_python()
    if py is None:
        pytest.skip(ros2_env.unavailable_reason())
    return py


@pytest.fixture(autouse=True)
def _no_tensorflow_next_to_rendering(request):
    if request.node.get_closest_marker("renders") is not None:
        import sys

        if "tensorflow" in sys.modules:
            pytest.fail(
                "TensorFlow is loaded in this pytest process and this test renders with MuJoCo (llvmpipe segfaults "
                "next to TF). Run rendering tests in their own invocation: pytest -m renders; pytest -m 'not renders'"
            )
    yield
