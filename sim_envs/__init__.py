"""MuJoCo tabletop manipulation for VLA policies: Franka Panda tasks with language, domain randomization,
scripted experts, gymnasium registration.

    import gymnasium, sim_envs
    env = gymnasium.make("vla_sim/LiftCube-v0", dr_level="none", image_size=224)

`import sim_envs` registers every task of `sim_envs.tasks.TASK_CLASSES` as `vla_sim/<Task>-v0` and, on a
machine without a display, defaults `MUJOCO_GL` to `egl` (offscreen); nothing else runs at import, and
mujoco is imported when an env is built. `sim_envs.TASKS` lists the ids.
"""

from __future__ import annotations

import os

import gymnasium

from sim_envs.tasks import TASK_CLASSES

NAMESPACE = "vla_sim"
#: Registered gymnasium ids, e.g. "vla_sim/LiftCube-v0".
TASKS: tuple[str, ...] = tuple(f"{NAMESPACE}/{name}-v0" for name in TASK_CLASSES)


def _default_headless_gl() -> None:
    """Render offscreen with EGL when no display is configured (MuJoCo would try GLFW/X11 and fail)."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"


def _register() -> None:
    for name, cls in TASK_CLASSES.items():
        env_id = f"{NAMESPACE}/{name}-v0"
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="sim_envs.env:TabletopEnv",
            kwargs={"task": name},
            max_episode_steps=cls.max_episode_steps,
        )


_default_headless_gl()
_register()


def task_id(name_or_id: str) -> str:
    """Normalize "LiftCube", "LiftCube-v0" or "vla_sim/LiftCube-v0" to the gymnasium id (ValueError if unknown)."""
    name = name_or_id.split("/")[-1]
    name = name[:-3] if name.endswith("-v0") else name
    env_id = f"{NAMESPACE}/{name}-v0"
    if env_id not in TASKS:
        raise ValueError(f"unknown task {name_or_id!r}; registered: {list(TASKS)}")
    return env_id


def describe_tasks() -> list[dict]:
    """One row per registered task: id, description, instruction templates, episode limit."""
    return [
        {"id": f"{NAMESPACE}/{name}-v0", "description": cls.description, "templates": list(cls.templates),
         "max_episode_steps": cls.max_episode_steps}
        for name, cls in TASK_CLASSES.items()
    ]


def to_observation(obs: dict, info: dict, timestamp: float = 0.0):
    """Turn an env observation + info into the contract `vla.Observation`."""
    from vla.core.types import Observation

    images = {k: v for k, v in obs.items() if k != "proprio"}
    return Observation(images=images, proprio=obs["proprio"], instruction=str(info["instruction"]), timestamp=timestamp)


__all__ = ["NAMESPACE", "TASKS", "describe_tasks", "task_id", "to_observation"]
