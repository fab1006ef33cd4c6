"""Single-dimension perturbation levels for a robustness sweep (LIBERO-Plus style), as data.

The combined DR levels (`configs/dr/low|medium|high.yaml`) move every dimension at once, so a drop in success
does not say which change hurt. Here each dimension is perturbed alone at a magnitude 0-3 (0 = nominal,
1 = small, 2 = middle, 3 = large), giving a level named `<dimension>@<magnitude>`, e.g. `camera@2`:

    perturbation_config("camera", 2)              # a DRConfig that moves the primary camera only
    sweep_levels(["camera", "lighting"])          # {"nominal": ..., "camera@1": ..., ..., "lighting@3": ...}
    level_config("latency@3")                     # parse a level name (shipped level names work too)
    make_env("LiftCube", dr="camera@2")           # load_dr_config resolves these names as well

Magnitudes follow the combined levels where a dimension has a value there: small = `low`'s, middle =
`medium`'s, large = `high`'s (docs/sim.md has the table). Distractors and the arm's start-pose jitter are not
in the combined levels; their magnitudes are chosen to grow to where a pick can be crowded or a grasp
tilted.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Sequence

from sim_envs.domain_randomization import (
    DRConfig,
    PhysicsDRConfig,
    SceneDRConfig,
    SensorDRConfig,
    VisualDRConfig,
    available_levels,
    load_dr_config,
)

MAGNITUDE_NAMES = ("nominal", "small", "middle", "large")
MAX_MAGNITUDE = len(MAGNITUDE_NAMES) - 1
NOMINAL = "nominal"

#: dimension -> the `DRConfig` overrides ("group.field": value) at magnitudes 1, 2, 3. Magnitude 0 is the
#: nominal scene. Every dimension owns its fields alone, so a level perturbs nothing else.
MAGNITUDES: dict[str, tuple[dict[str, Any], ...]] = {
    "camera": tuple(
        {"visual.camera_pos_jitter": p, "visual.camera_rot_jitter": r, "visual.camera_fovy_jitter": f}
        for p, r, f in ((0.01, 0.01, 1.0), (0.02, 0.03, 3.0), (0.04, 0.06, 5.0))
    ),
    "lighting": tuple(
        {"visual.light_scale": s, "visual.light_pos_jitter": p}
        for s, p in (([0.85, 1.15], 0.1), ([0.7, 1.3], 0.25), ([0.5, 1.5], 0.4))
    ),
    "texture": tuple(
        {"visual.textures": t, "visual.table_rgb_jitter": c, "visual.object_rgb_jitter": o}
        for t, c, o in ((False, 0.05, 0.02), (True, 0.1, 0.04), (True, 0.2, 0.06))
    ),
    "distractors": tuple({"scene.distractors": [n, n]} for n in (1, 2, 4)),
    "noise": tuple(
        {"sensor.image_noise_std": i, "sensor.proprio_noise_std": p} for i, p in ((2.0, 0.001), (4.0, 0.002), (8.0, 0.005))
    ),
    "physics": tuple(
        {"physics.friction_scale": f, "physics.object_mass_scale": m, "physics.joint_damping_scale": d,
         "physics.actuator_gain_scale": g}
        for f, m, d, g in (
            ([0.9, 1.1], [0.9, 1.1], [0.9, 1.1], [0.95, 1.05]),
            ([0.7, 1.3], [0.7, 1.5], [0.7, 1.3], [0.85, 1.15]),
            ([0.5, 1.5], [0.5, 2.0], [0.5, 1.5], [0.7, 1.3]),
        )
    ),
    # Fixed delays (not ranges) from middle on: `medium`'s range [0, 1] is the small step.
    "latency": tuple({"sensor.action_latency_steps": s} for s in ([0, 1], [1, 1], [2, 2])),
    "robot_init": tuple({"scene.init_joint_jitter": j} for j in (0.05, 0.1, 0.2)),
}
DIMENSIONS: tuple[str, ...] = tuple(MAGNITUDES)

_GROUPS = {"visual": VisualDRConfig, "physics": PhysicsDRConfig, "sensor": SensorDRConfig, "scene": SceneDRConfig}


def _check(dimension: str, magnitude: int) -> None:
    if dimension not in MAGNITUDES:
        raise ValueError(f"unknown perturbation dimension {dimension!r}; valid dimensions: {list(DIMENSIONS)}")
    if isinstance(magnitude, bool) or not isinstance(magnitude, numbers.Integral) or not 0 <= magnitude <= MAX_MAGNITUDE:
        raise ValueError(f"perturbation magnitude must be an integer 0-{MAX_MAGNITUDE} "
                         f"({', '.join(f'{i} = {n}' for i, n in enumerate(MAGNITUDE_NAMES))}), got {magnitude!r}")


def level_name(dimension: str, magnitude: int) -> str:
    _check(dimension, magnitude)
    return f"{dimension}@{int(magnitude)}"


def perturbation_config(dimension: str, magnitude: int) -> DRConfig:
    """The `DRConfig` that perturbs only `dimension` at `magnitude` (0 = the nominal scene)."""
    _check(dimension, magnitude)
    groups: dict[str, dict[str, Any]] = {g: {} for g in _GROUPS}
    for path, value in (MAGNITUDES[dimension][int(magnitude) - 1] if magnitude else {}).items():
        group, name = path.split(".")
        groups[group][name] = list(value) if isinstance(value, list) else value
    return DRConfig(level=level_name(dimension, magnitude), **{g: cls(**groups[g]) for g, cls in _GROUPS.items()})


def parse_level(name: str) -> tuple[str, int]:
    """`"camera@2"` -> `("camera", 2)`, with an error naming the valid dimensions and magnitudes."""
    dimension, sep, mag = str(name).partition("@")
    if not sep or not mag.strip().isdigit():
        raise ValueError(f"perturbation level {name!r} must look like <dimension>@<magnitude 0-{MAX_MAGNITUDE}>, "
                         f"e.g. camera@2; dimensions: {list(DIMENSIONS)}")
    _check(dimension.strip(), int(mag))
    return dimension.strip(), int(mag)


def level_config(name: str) -> DRConfig:
    """The `DRConfig` of a level name: `nominal`, `<dimension>@<magnitude>`, or a shipped level (`none`, `low`,
    ...), so one list can mix the per-dimension sweep and the combined levels."""
    if name == NOMINAL:
        return DRConfig(level=NOMINAL)
    if "@" in str(name):
        return perturbation_config(*parse_level(name))
    if name in available_levels():
        return load_dr_config(name)
    raise ValueError(f"unknown level {name!r}; use {NOMINAL!r}, <dimension>@<0-{MAX_MAGNITUDE}> with a dimension "
                     f"in {list(DIMENSIONS)}, or a shipped DR level in {available_levels()}")


def sweep_levels(dimensions: Iterable[str] | None = None,
                 magnitudes: Sequence[int] = (1, 2, 3)) -> dict[str, DRConfig]:
    """`{"nominal": ..., "<dimension>@<m>": ...}` for every dimension (all by default) and magnitude (0 is
    `nominal` itself and is not repeated per dimension), in dimension then magnitude order."""
    dims = list(DIMENSIONS if dimensions is None else dimensions)
    if not dims:
        raise ValueError(f"need at least one perturbation dimension; valid dimensions: {list(DIMENSIONS)}")
    levels = {NOMINAL: DRConfig(level=NOMINAL)}
    for d in dims:
        for m in magnitudes:
            _check(d, m)
            if m:
                levels[level_name(d, m)] = perturbation_config(d, m)
    return levels


__all__ = ["DIMENSIONS", "MAGNITUDES", "MAGNITUDE_NAMES", "MAX_MAGNITUDE", "NOMINAL", "level_config", "level_name",
           "parse_level", "perturbation_config", "sweep_levels"]
