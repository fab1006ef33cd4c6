"""Hydra schemas of the simulation: `sim` (env construction) and `dr` (domain randomization) groups.

    configs/sim/default.yaml   224 px, both cameras, 10 Hz control        schema: SimConfig
    configs/sim/fast.yaml      64 px: tests, CPU demos
    sim.robot=panda|ur5e       the arm (`sim_envs.robots`; default panda)
    configs/dr/<level>.yaml    none | low | medium | high                 schema: DRConfig

`register_configs()` stores both schemas in hydra's ConfigStore (`sim/sim_schema`, `dr/dr_schema`), so
commands that compose them get type checking. Outside hydra, `make_env(task, sim="fast", dr="low")` builds
an env from the shipped YAML files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sim_envs.controller import ControllerConfig
from sim_envs.domain_randomization import DRConfig, load_dr_config
from sim_envs.robots import get_robot


@dataclass
class SimConfig:
    """How envs are built (everything except the task and the DR level).

    Attributes:
        robot: the arm + gripper (`sim_envs.robots`: panda | ur5e).
        image_size: square camera resolution in pixels.
        cameras: rendered cameras; `primary` is required, `wrist` optional.
        terminate_on_success: end the episode at the first successful step (else run to the time limit).
        max_episode_steps: None keeps each task's own limit.
        controller: end-effector delta controller settings (control rate, per-step limits, workspace).
    """

    robot: str = "panda"
    image_size: int = 224
    cameras: list[str] = field(default_factory=lambda: ["primary", "wrist"])
    terminate_on_success: bool = True
    max_episode_steps: Any = None
    controller: ControllerConfig = field(default_factory=ControllerConfig)

    def __post_init__(self) -> None:
        get_robot(self.robot)  # an unknown name fails here, listing the registered robots


def register_configs() -> None:
    """Store the `sim` and `dr` schemas in hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(group="sim", name="sim_schema", node=SimConfig)
    cs.store(group="dr", name="dr_schema", node=DRConfig)


def available_sim_configs() -> list[str]:
    root = resources.files("configs") / "sim"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_sim_config(name: str = "default") -> SimConfig:
    """The `SimConfig` of `configs/sim/<name>.yaml`, validated against the schema."""
    from omegaconf import OmegaConf

    names = available_sim_configs()
    if name not in names:
        raise ValueError(f"unknown sim config {name!r}; choose one of {names} (files in configs/sim/)")
    raw = OmegaConf.load(str(resources.files("configs") / "sim" / f"{name}.yaml"))
    raw.pop("defaults", None)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SimConfig), raw))


def make_env(task: str, *, sim: str | SimConfig = "default", dr: str | DRConfig = "none", **overrides):
    """`gymnasium.make` of a task with a sim config and a DR level (names of shipped YAMLs or objects)."""
    import gymnasium

    import sim_envs

    sim_cfg = load_sim_config(sim) if isinstance(sim, str) else sim
    dr_cfg = load_dr_config(dr) if isinstance(dr, str) else dr
    kwargs: dict[str, Any] = dict(
        robot=sim_cfg.robot,
        dr_config=dr_cfg,
        image_size=sim_cfg.image_size,
        cameras=tuple(sim_cfg.cameras),
        controller=sim_cfg.controller,
        terminate_on_success=sim_cfg.terminate_on_success,
    )
    if sim_cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(sim_cfg.max_episode_steps)
    kwargs.update(overrides)
    return gymnasium.make(sim_envs.task_id(task), **kwargs)
