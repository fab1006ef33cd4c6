"""Domain randomization: visual, physics and sensor/control perturbations, sampled per episode.

Levels `none`, `low`, `medium`, `high` are hydra configs in `configs/dr/<level>.yaml` on the `DRConfig`
schema below (a custom level is one more YAML file, or a `DRConfig` passed to the env). Sampling draws every
random quantity from one generator into a JSON-serializable dict (`dr_params`); applying a dict is
deterministic, so an episode replays exactly from (seed, dr_params):

    env.reset(seed=7, options={"dr_params": info["dr_params"]})

The dict layout (all numbers are plain floats/ints):
    level
    visual:  table_material, floor_material (texture variant index), table_rgb_delta [3],
             object_rgb_delta {geom: [3]} (colours named in the instruction: small jitter only),
             light_scale, light_pos_delta [[3] per light], camera_pos_delta [3], camera_rot_delta [3] (rad),
             camera_fovy_delta (deg)
    physics: friction_scale, object_mass_scale, joint_damping_scale, actuator_gain_scale
    sensor:  image_noise_std (0-255 units), proprio_noise_std, action_latency_steps
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from sim_envs.robot import rpy_to_mat

logger = logging.getLogger(__name__)

N_TABLE_MATERIALS = 4
N_FLOOR_MATERIALS = 3


@dataclass
class VisualDRConfig:
    """Appearance. Ranges are symmetric jitters or [low, high] scales."""

    textures: bool = False  # pick table / floor texture variants
    table_rgb_jitter: float = 0.0
    object_rgb_jitter: float = 0.0  # keep small: instruction colours must stay recognizable
    light_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    light_pos_jitter: float = 0.0  # m
    camera_pos_jitter: float = 0.0  # m, primary camera
    camera_rot_jitter: float = 0.0  # rad per axis, primary camera
    camera_fovy_jitter: float = 0.0  # deg


@dataclass
class PhysicsDRConfig:
    """Dynamics: [low, high] scale ranges on the nominal model."""

    friction_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    object_mass_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    joint_damping_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    actuator_gain_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])


@dataclass
class SensorDRConfig:
    """Sensing and actuation: per-episode noise levels drawn in [0, max], latency in [low, high] steps."""

    image_noise_std: float = 0.0
    proprio_noise_std: float = 0.0
    action_latency_steps: list[int] = field(default_factory=lambda: [0, 0])


@dataclass
class DRConfig:
    """One randomization level (schema of `configs/dr/*.yaml`)."""

    level: str = "none"
    visual: VisualDRConfig = field(default_factory=VisualDRConfig)
    physics: PhysicsDRConfig = field(default_factory=PhysicsDRConfig)
    sensor: SensorDRConfig = field(default_factory=SensorDRConfig)

    def __post_init__(self) -> None:
        for group in (self.visual, self.physics):
            for name, value in vars(group).items():
                if isinstance(value, (list, tuple)) and (len(value) != 2 or value[0] > value[1] or value[0] <= 0):
                    raise ValueError(f"dr.{name} must be [low, high] with 0 < low <= high, got {list(value)}")
        lat = self.sensor.action_latency_steps
        if len(lat) != 2 or lat[0] < 0 or lat[0] > lat[1]:
            raise ValueError(f"dr.sensor.action_latency_steps must be [low, high] with 0 <= low <= high, got {lat}")


def available_levels() -> list[str]:
    """Names of the levels shipped in `configs/dr/`."""
    root = resources.files("configs") / "dr"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_dr_config(level: str) -> DRConfig:
    """The `DRConfig` of a shipped level, read from `configs/dr/<level>.yaml` through the schema."""
    from omegaconf import OmegaConf

    levels = available_levels()
    if level not in levels:
        raise ValueError(f"unknown domain-randomization level {level!r}; choose one of {levels} "
                         "(or add configs/dr/<name>.yaml on the DRConfig schema)")
    raw = OmegaConf.load(str(resources.files("configs") / "dr" / f"{level}.yaml"))
    raw.pop("defaults", None)
    merged = OmegaConf.merge(OmegaConf.structured(DRConfig), raw)
    return OmegaConf.to_object(merged)


def _uniform(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def _jitter(rng: np.random.Generator, scale: float, n: int) -> list[float]:
    return rng.uniform(-scale, scale, n).tolist() if scale > 0 else [0.0] * n


def sample_dr_params(cfg: DRConfig, rng: np.random.Generator, *, named_geoms: list[str], n_lights: int) -> dict[str, Any]:
    """Draw one episode's parameters (JSON-serializable) from `cfg`."""
    v, p, s = cfg.visual, cfg.physics, cfg.sensor
    visual = {
        "table_material": int(rng.integers(N_TABLE_MATERIALS)) if v.textures else 0,
        "floor_material": int(rng.integers(N_FLOOR_MATERIALS)) if v.textures else 0,
        "table_rgb_delta": _jitter(rng, v.table_rgb_jitter, 3),
        "object_rgb_delta": {g: _jitter(rng, v.object_rgb_jitter, 3) for g in named_geoms},
        "light_scale": _uniform(rng, v.light_scale),
        "light_pos_delta": [_jitter(rng, v.light_pos_jitter, 3) for _ in range(n_lights)],
        "camera_pos_delta": _jitter(rng, v.camera_pos_jitter, 3),
        "camera_rot_delta": _jitter(rng, v.camera_rot_jitter, 3),
        "camera_fovy_delta": _jitter(rng, v.camera_fovy_jitter, 1)[0],
    }
    physics = {
        "friction_scale": _uniform(rng, p.friction_scale),
        "object_mass_scale": _uniform(rng, p.object_mass_scale),
        "joint_damping_scale": _uniform(rng, p.joint_damping_scale),
        "actuator_gain_scale": _uniform(rng, p.actuator_gain_scale),
    }
    lat_lo, lat_hi = s.action_latency_steps
    sensor = {
        "image_noise_std": _uniform(rng, (0.0, s.image_noise_std)),
        "proprio_noise_std": _uniform(rng, (0.0, s.proprio_noise_std)),
        "action_latency_steps": int(rng.integers(lat_lo, lat_hi + 1)),
    }
    return {"level": cfg.level, "visual": visual, "physics": physics, "sensor": sensor}


class DomainRandomizer:
    """Snapshots the nominal model once; `apply` restores it and writes one episode's parameters."""

    _ARRAYS = ("geom_friction", "body_mass", "body_inertia", "dof_damping", "actuator_gainprm", "actuator_biasprm",
               "geom_rgba", "geom_matid", "mat_rgba", "light_diffuse", "light_pos", "cam_pos", "cam_quat", "cam_fovy")

    def __init__(self, model, *, object_bodies: list[str], camera: str = "primary"):
        self.model = model
        self.nominal = {name: getattr(model, name).copy() for name in self._ARRAYS}
        self.object_bodies = [model.body(b).id for b in object_bodies]
        self.table_geom = model.geom("table").id
        self.floor_geom = model.geom("floor").id
        self.table_mats = [model.material(f"table_mat{i}").id for i in range(N_TABLE_MATERIALS)]
        self.floor_mats = [model.material(f"floor_mat{i}").id for i in range(N_FLOOR_MATERIALS)]
        self.camera = model.camera(camera).id

    def restore(self) -> None:
        for name, value in self.nominal.items():
            getattr(self.model, name)[...] = value

    def apply(self, params: dict[str, Any]) -> None:
        """Write `params` (from `sample_dr_params`) into the model. Call after the task set its colours."""
        import mujoco

        m, nom = self.model, self.nominal
        try:
            vis, phys = params["visual"], params["physics"]
            table_mat = self.table_mats[vis["table_material"]]
            floor_mat = self.floor_mats[vis["floor_material"]]
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"dr_params is malformed ({e!r}); pass the dict an env put in info['dr_params']") from None
        m.geom_matid[self.table_geom] = table_mat
        m.geom_matid[self.floor_geom] = floor_mat
        m.mat_rgba[table_mat, :3] = np.clip(nom["mat_rgba"][table_mat, :3] + vis["table_rgb_delta"], 0, 1)
        for geom, delta in vis["object_rgb_delta"].items():
            gid = m.geom(geom).id
            m.geom_rgba[gid, :3] = np.clip(m.geom_rgba[gid, :3] + delta, 0, 1)
        m.light_diffuse[:] = np.clip(nom["light_diffuse"] * vis["light_scale"], 0, 1)
        m.light_pos[:] = nom["light_pos"] + np.asarray(vis["light_pos_delta"]).reshape(nom["light_pos"].shape)
        c = self.camera
        m.cam_pos[c] = nom["cam_pos"][c] + vis["camera_pos_delta"]
        base = np.zeros(9)
        mujoco.mju_quat2Mat(base, nom["cam_quat"][c])
        rot = rpy_to_mat(vis["camera_rot_delta"]) @ base.reshape(3, 3)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, rot.ravel())
        m.cam_quat[c] = quat
        m.cam_fovy[c] = nom["cam_fovy"][c] + vis["camera_fovy_delta"]

        m.geom_friction[:, 0] = nom["geom_friction"][:, 0] * phys["friction_scale"]
        for b in self.object_bodies:
            m.body_mass[b] = nom["body_mass"][b] * phys["object_mass_scale"]
            m.body_inertia[b] = nom["body_inertia"][b] * phys["object_mass_scale"]
        m.dof_damping[:] = nom["dof_damping"] * phys["joint_damping_scale"]
        # Position servo: force = kp * ctrl - kp * q; scale both terms to keep the servo consistent.
        m.actuator_gainprm[:, 0] = nom["actuator_gainprm"][:, 0] * phys["actuator_gain_scale"]
        m.actuator_biasprm[:, 1] = nom["actuator_biasprm"][:, 1] * phys["actuator_gain_scale"]
