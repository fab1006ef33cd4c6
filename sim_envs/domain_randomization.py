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
    scene:   distractors [{slot, xy [2], yaw, rgb [3]}] (pool bodies put on the table), init_joint_delta
             [n_arm_joints] (rad, added to the arm's start pose); recordings made before this group existed replay as if empty

The `scene` group is drawn last, and draws nothing when off, so a level without it samples the same numbers
as before it existed. Distractors are pool bodies of the scene (`sim_envs.scene.add_distractor_pool`) put on
free table spots: clear of every task geom, of the travel of the task's sliding parts (a drawer) and of the
straight paths from the task's movable objects to its fixed ones (a cube to its target or plate).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from sim_envs.robot import Physics, rpy_to_mat
from sim_envs.scene import DISTRACTOR_PREFIX, DISTRACTOR_SHAPES, N_DISTRACTORS

logger = logging.getLogger(__name__)

N_TABLE_MATERIALS = 4
N_FLOOR_MATERIALS = 3
#: Distractor colours: none is a colour instructions name (`sim_envs.tasks.base.COLORS`), nor the table's.
DISTRACTOR_RGB = {"white": (0.92, 0.92, 0.90), "grey": (0.50, 0.50, 0.52), "black": (0.10, 0.10, 0.10),
                  "pink": (0.95, 0.60, 0.75), "cyan": (0.20, 0.80, 0.85)}
#: Table region distractors are put in (xy, m): what the primary camera sees of the table, right of the base.
DISTRACTOR_LOW, DISTRACTOR_HIGH = np.array([0.30, -0.22]), np.array([0.64, 0.22])
DISTRACTOR_GAP = 0.02  # m between a distractor's footprint and anything else's
DISTRACTOR_TRIES = 200
#: m kept free behind a movable task object, on its side away from a fixed one: where a pushing hand goes.
HAND_ROOM = 0.05
JOINT_MARGIN = 0.02  # rad: jittered start poses stay this far inside the joint ranges


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
class SceneDRConfig:
    """What the episode starts with beyond the task's layout: distractor count [low, high] (at most
    `sim_envs.scene.N_DISTRACTORS`) and a uniform jitter (rad, per joint) on the arm's start pose."""

    distractors: list[int] = field(default_factory=lambda: [0, 0])
    init_joint_jitter: float = 0.0


@dataclass
class DRConfig:
    """One randomization level (schema of `configs/dr/*.yaml`)."""

    level: str = "none"
    visual: VisualDRConfig = field(default_factory=VisualDRConfig)
    physics: PhysicsDRConfig = field(default_factory=PhysicsDRConfig)
    sensor: SensorDRConfig = field(default_factory=SensorDRConfig)
    scene: SceneDRConfig = field(default_factory=SceneDRConfig)

    def __post_init__(self) -> None:
        for group in (self.visual, self.physics):
            for name, value in vars(group).items():
                if isinstance(value, (list, tuple)) and (len(value) != 2 or value[0] > value[1] or value[0] <= 0):
                    raise ValueError(f"dr.{name} must be [low, high] with 0 < low <= high, got {list(value)}")
        lat = self.sensor.action_latency_steps
        if len(lat) != 2 or lat[0] < 0 or lat[0] > lat[1]:
            raise ValueError(f"dr.sensor.action_latency_steps must be [low, high] with 0 <= low <= high, got {lat}")
        n = self.scene.distractors
        if len(n) != 2 or n[0] < 0 or n[0] > n[1] or n[1] > N_DISTRACTORS:
            raise ValueError(f"dr.scene.distractors must be [low, high] with 0 <= low <= high <= {N_DISTRACTORS} "
                             f"(the pool size), got {list(n)}")
        if self.scene.init_joint_jitter < 0:
            raise ValueError(f"dr.scene.init_joint_jitter must be >= 0 rad, got {self.scene.init_joint_jitter}")


def available_levels() -> list[str]:
    """Names of the levels shipped in `configs/dr/`."""
    root = resources.files("configs") / "dr"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_dr_config(level: str) -> DRConfig:
    """The `DRConfig` of a shipped level, read from `configs/dr/<level>.yaml` through the schema, or of a
    single-dimension perturbation level such as `camera@2` (`sim_envs.perturbations`)."""
    from omegaconf import OmegaConf

    if "@" in level or level == "nominal":
        from sim_envs.perturbations import level_config

        return level_config(level)
    levels = available_levels()
    if level not in levels:
        raise ValueError(f"unknown domain-randomization level {level!r}; choose one of {levels}, a perturbation "
                         "level <dimension>@<magnitude> (sim_envs.perturbations), or add configs/dr/<name>.yaml "
                         "on the DRConfig schema")
    raw = OmegaConf.load(str(resources.files("configs") / "dr" / f"{level}.yaml"))
    raw.pop("defaults", None)
    merged = OmegaConf.merge(OmegaConf.structured(DRConfig), raw)
    return OmegaConf.to_object(merged)


def _uniform(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def _jitter(rng: np.random.Generator, scale: float, n: int) -> list[float]:
    return rng.uniform(-scale, scale, n).tolist() if scale > 0 else [0.0] * n


@dataclass
class TableLayout:
    """Where distractors must not go: capsules (xy segment from `p0` to `p1`, radius `r`, m) on the table."""

    capsules: list[tuple[np.ndarray, np.ndarray, float]] = field(default_factory=list)

    def clearance(self, xy: np.ndarray) -> float:
        """Distance (m) from `xy` to the nearest capsule's surface (inf when there are none)."""
        best = np.inf
        for p0, p1, r in self.capsules:
            seg = p1 - p0
            t = float(np.clip((xy - p0) @ seg / max(float(seg @ seg), 1e-12), 0.0, 1.0))
            best = min(best, float(np.linalg.norm(xy - (p0 + t * seg))) - r)
        return best


def _sample_distractors(rng: np.random.Generator, count: list[int], layout: TableLayout | None) -> list[dict]:
    lo, hi = count
    if hi == 0:
        return []
    if layout is None:
        raise ValueError("this level puts distractors on the table: pass layout=DomainRandomizer.layout(physics)")
    n = int(rng.integers(lo, hi + 1))
    slots = rng.permutation(N_DISTRACTORS)[:n]
    names = list(DISTRACTOR_RGB)
    colors = rng.choice(len(names), size=n, replace=False)
    placed: list[dict] = []
    for slot, color in zip(slots, colors):
        radius = DISTRACTOR_SHAPES[slot].footprint_radius
        yaw = float(rng.uniform(-np.pi, np.pi))
        for _ in range(DISTRACTOR_TRIES):
            xy = rng.uniform(DISTRACTOR_LOW, DISTRACTOR_HIGH)
            if layout.clearance(xy) < radius + DISTRACTOR_GAP:
                continue
            if all(np.linalg.norm(xy - d["xy"]) >= radius + DISTRACTOR_SHAPES[d["slot"]].footprint_radius
                   + DISTRACTOR_GAP for d in placed):
                placed.append({"slot": int(slot), "xy": xy.tolist(), "yaw": yaw,
                               "rgb": list(DISTRACTOR_RGB[names[color]])})
                break
        else:
            logger.info("no free table spot for distractor %d after %d tries; the episode has %d",
                           slot, DISTRACTOR_TRIES, len(placed))
    return placed


def sample_dr_params(cfg: DRConfig, rng: np.random.Generator, *, named_geoms: list[str], n_lights: int,
                     layout: TableLayout | None = None, n_arm_joints: int = 7) -> dict[str, Any]:
    """Draw one episode's parameters (JSON-serializable) from `cfg`. `layout` (the placed task objects) is
    needed only when the level puts distractors on the table; `n_arm_joints`: the robot's arm joints."""
    v, p, s, sc = cfg.visual, cfg.physics, cfg.sensor, cfg.scene
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
    scene = {"init_joint_delta": _jitter(rng, sc.init_joint_jitter, n_arm_joints)}
    scene["distractors"] = _sample_distractors(rng, sc.distractors, layout)
    return {"level": cfg.level, "visual": visual, "physics": physics, "sensor": sensor, "scene": scene}


class DomainRandomizer:
    """Snapshots the nominal model once; `apply` restores it and writes one episode's parameters."""

    _ARRAYS = ("geom_friction", "body_mass", "body_inertia", "dof_damping", "actuator_gainprm", "actuator_biasprm",
               "geom_rgba", "geom_matid", "mat_rgba", "light_diffuse", "light_pos", "cam_pos", "cam_quat", "cam_fovy",
               "body_gravcomp")

    def __init__(self, model, *, object_bodies: list[str], camera: str = "primary"):
        self.model = model
        self.nominal = {name: getattr(model, name).copy() for name in self._ARRAYS}
        self.object_bodies = [model.body(b).id for b in object_bodies]
        self.table_geom = model.geom("table").id
        self.floor_geom = model.geom("floor").id
        self.table_mats = [model.material(f"table_mat{i}").id for i in range(N_TABLE_MATERIALS)]
        self.floor_mats = [model.material(f"floor_mat{i}").id for i in range(N_FLOOR_MATERIALS)]
        self.camera = model.camera(camera).id
        self.distractors = [model.body(f"{DISTRACTOR_PREFIX}{i}").id for i in range(N_DISTRACTORS)]
        robot_root = model.body_rootid[model.body("robot_base").id]
        roots = model.body_rootid
        self._task_bodies = [b for b in range(1, model.nbody) if roots[b] != robot_root and b not in self.distractors]

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

        for d in self._distractors(params):  # on the table: feel gravity, take the episode's colour
            body = self.distractors[d["slot"]]
            m.body_gravcomp[body] = 0.0
            m.geom_rgba[m.body_geomadr[body], :3] = d["rgb"]

    def apply_state(self, physics: Physics, params: dict[str, Any]) -> None:
        """Write the state part of `params` (distractor poses, arm start offset). Call after `apply`, with the
        robot at its start pose and the task's objects placed, before the settle steps."""
        on_table = {d["slot"]: d for d in self._distractors(params)}
        m, data = self.model, physics.data
        for slot, body in enumerate(self.distractors):
            name = m.body(body).name
            if slot in on_table:
                d = on_table[slot]
                physics.set_free_body(name, (*d["xy"], DISTRACTOR_SHAPES[slot].half_height), float(d["yaw"]))
            else:
                adr = m.jnt_qposadr[m.body_jntadr[body]]
                physics.set_free_body(name, m.qpos0[adr:adr + 3], 0.0)
        n = len(physics.arm_qpos)
        delta = np.asarray(params.get("scene", {}).get("init_joint_delta", [0.0] * n), float)
        if delta.shape != (n,):
            raise ValueError(f"dr_params scene.init_joint_delta must hold {n} numbers (one per arm joint of robot "
                             f"{physics.robot.name!r}), got {delta.tolist()}: were these parameters recorded on "
                             "another robot?")
        if np.any(delta):
            lo, hi = physics.arm_range[:, 0] + JOINT_MARGIN, physics.arm_range[:, 1] - JOINT_MARGIN
            q = np.clip(physics.arm_q() + delta, lo, hi)
            data.qpos[physics.arm_qpos] = q
            data.qvel[physics.arm_dof] = 0.0
            data.ctrl[physics.arm_actuators] = q  # the servos hold the jittered pose, not home

    def layout(self, physics: Physics) -> TableLayout:
        """Keep-out capsules of the task's objects as placed now (see the module docstring)."""
        import mujoco

        m, data = self.model, physics.data
        mujoco.mj_kinematics(m, data)
        capsules = []
        task_geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] in self._task_bodies]
        for g in task_geoms:
            xy, r, body = data.geom_xpos[g, :2].copy(), float(m.geom_rbound[g]), m.geom_bodyid[g]
            p0, p1 = xy, xy
            for j in range(m.body_jntadr[body], m.body_jntadr[body] + m.body_jntnum[body]):
                if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE:  # the part's whole travel
                    q, (lo, hi) = data.qpos[m.jnt_qposadr[j]], m.jnt_range[j]
                    axis = data.xaxis[j, :2]
                    p0, p1 = xy + axis * (lo - q), xy + axis * (hi - q)
            capsules.append((p0, p1, r))
        movable = [g for g in task_geoms if m.body_jntnum[m.geom_bodyid[g]] and
                   m.jnt_type[m.body_jntadr[m.geom_bodyid[g]]] == mujoco.mjtJoint.mjJNT_FREE]
        fixed = [g for g in task_geoms if m.body_jntnum[m.geom_bodyid[g]] == 0]
        for g in movable:  # a pushed or carried object's way to its target, and room behind it for the hand
            for f in fixed:
                start, goal = data.geom_xpos[g, :2].copy(), data.geom_xpos[f, :2].copy()
                back = (start - goal) / max(float(np.linalg.norm(start - goal)), 1e-9)
                capsules.append((start + HAND_ROOM * back, goal, float(m.geom_rbound[g])))
        return TableLayout(capsules)

    def _distractors(self, params: dict[str, Any]) -> list[dict]:
        try:
            placed = list(params.get("scene", {}).get("distractors", []))
            for d in placed:
                if not 0 <= d["slot"] < N_DISTRACTORS or len(d["xy"]) != 2 or len(d["rgb"]) != 3:
                    raise ValueError(d)
                float(d["yaw"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"dr_params scene.distractors is malformed ({e!r}); each entry needs slot "
                             f"(0-{N_DISTRACTORS - 1}), xy [2], yaw and rgb [3]") from None
        return placed
