"""MuJoCo tabletop manipulation for VLA policies: tasks with language on a Franka Panda or a UR5e
(`sim_envs.robots`, `robot=`), domain randomization, scripted experts, gymnasium registration.

    import gymnasium, sim_envs
    env = gymnasium.make("vla_sim/LiftCube-v0", dr_level="none", image_size=224)

`import sim_envs` registers every task of `sim_envs.tasks.TASK_CLASSES` as `vla_sim/<Task>-v0` and the
policy kinds `expert` and `no_vision` in `vla.policy` (`sim_envs.baselines`); nothing else runs at import,
and mujoco is imported when an env is built. `sim_envs.TASKS` lists the ids. Rendering needs `MUJOCO_GL`
(e.g. `egl` on a machine without a display): the entry points set it
(`vla.cli.hydra_app.default_headless_gl`), a library import does not.
"""

from __future__ import annotations

import gymnasium

import sim_envs.baselines  # noqa: F401  (registers the policy kinds expert and no_vision; numpy only)
from sim_envs.tasks import TASK_CLASSES

NAMESPACE = "vla_sim"
#: Registered gymnasium ids, e.g. "vla_sim/LiftCube-v0".
TASKS: tuple[str, ...] = tuple(f"{NAMESPACE}/{name}-v0" for name in TASK_CLASSES)


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
    """One row per registered task: id, description, training and held-out instruction templates, episode limit."""
    return [
        {"id": f"{NAMESPACE}/{name}-v0", "description": cls.description, "templates": list(cls.templates),
         "heldout_templates": list(cls.heldout_templates), "max_episode_steps": cls.max_episode_steps}
        for name, cls in TASK_CLASSES.items()
    ]

__all__ = ["NAMESPACE", "TASKS", "describe_tasks", "task_id"]
