"""Typed schemas of `vla-collect` and `vla-eval`, registered in hydra's ConfigStore.

The YAML files in `configs/` (collect.yaml, eval.yaml, eval/*.yaml) only select and override these.

Env construction and domain randomization are the config groups of sim_envs (`sim_envs.config`):
`sim` (`configs/sim/<name>.yaml`: image size, cameras, control rate, episode limit; `sim=fast` for 64 px)
and `dr` (`configs/dr/<level>.yaml`). `dr=low` selects a level and its parameters land under `dr`, so they
can be changed from the command line (`dr.physics.friction_scale=[0.5,1.5]`, `sim.image_size=96`).
`vla-eval` also takes several shipped levels at once with `levels=[none,low,high]` (or `levels=all`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore

from sim_envs.libero.runner import LiberoConfig
from vla.model.schema import ModelConfig


@dataclass
class CollectConfig:
    """`vla-collect task=LiftCube dr=low episodes=100`."""

    task: Any = "LiftCube"  # a task name / gymnasium id, or a list of them
    dr: Any = None  # filled by the `dr` config group (dr=none|low|medium|high)
    episodes: int = 10  # per task
    seed_start: int = 0  # episode i uses seed seed_start + i (evaluation's held-out seeds start at 1_000_000)
    workers: int = 2  # expert processes
    keep_failed: bool = False  # write failed expert episodes (success=false) instead of dropping them
    action_noise: float = 0.0  # DART-style: std (m) of noise on the executed translation; labels stay clean
    grasp_miss: float = 0.0  # failure data: the expert aims this far (m) beside the object (with keep_failed=true)
    random_takeover: float = 0.0  # world-model data: P(random actions take over an episode) (with keep_failed=true)
    wrong_target: float = 0.0  # world-model data: P(the expert acts on another candidate than the named one) (with keep_failed=true)
    every_target: bool = False  # paired language data: each scene once per candidate target (episodes = scenes)
    object_state: bool = False  # world-model data: record the task objects' xyz per step (observation/object_state)
    policy: str = ""  # on-policy rollouts: a policy spec (vla:path=DIR) drives, the expert labels (keep_failed=true)
    sim: Any = None  # filled by the `sim` config group (sim=default|fast; sim.image_size=..., ...)
    output_dir: str = "outputs/data"  # the dataset lands in <output_dir>/<name>/1.0.0
    name: Optional[str] = None  # None: sim_<task>_<dr>
    episodes_per_shard: int = 50
    overwrite: bool = False
    # LIBERO (sim_envs.libero.collect; docs/libero.md): `suite=libero_spatial|libero_object` collects with the
    # LIBERO scripted expert in LIBERO's venv instead of our tasks, into <output_dir>/<suite>_no_noops/1.0.0;
    # tasks and initial states come from `libero.tasks` / `libero.episodes` (not task/episodes/dr/sim).
    suite: Optional[str] = None
    libero: LiberoConfig = field(default_factory=LiberoConfig)


@dataclass
class GroundConfig:
    """`vla-ground tasks=[LiftNamedCube] model.vision_backbone=conv_keypoints model.vision_film=true`."""

    tasks: Any = field(default_factory=lambda: ["LiftNamedCube"])  # language tasks whose scenes are rendered
    dr: str = "low"  # DR level of the scenes
    levels: Optional[List[str]] = None  # several DR levels instead (scene i takes levels[i % n]), as vla-eval's
    scenes: int = 300  # per task; every candidate of each scene is named once
    heldout_scenes: int = 20  # per task, from the evaluation seeds: the held-out L1 in grounding.json
    frames_per_rollout: int = 2  # frames of each (scene, candidate) expert rollout
    max_expert_steps: int = 15  # frames come from step 0 and random steps up to this one
    action_noise: float = 0.01  # DART noise of the expert rollouts (m)
    steps: int = 3000
    batch_size: int = 16
    lr: float = 3e-4
    keypoint_weight: float = 0.0  # L1 putting a keypoint on the named object's image position (GroundingSettings)
    goal_keypoint_weight: float = 0.0  # the same for a second keypoint and the named goal (plate, push target)
    workers: int = 2  # rendering processes
    torch_threads: int = 1
    seed: int = 0
    output_dir: str = "outputs/ground"  # a checkpoint directory: vla-train init_from=<this>
    model: ModelConfig = field(default_factory=ModelConfig)  # the `model` config group (configs/model/*.yaml)
    sim: Any = None  # filled by the `sim` config group


@dataclass
class VideoConfig:
    episodes_per_cell: int = 1  # mp4s per task x DR level (the first seeds); 0 = none
    fps: float = 10.0


@dataclass
class PolicyContextConfig:
    """What every policy spec is built with (`vla.policy.PolicyContext`); a spec's own options win."""

    dataset: Any = None  # RLDS dataset dir(s) the no_vision baseline averages (vla-collect output)
    unnorm_key: Optional[str] = None  # checkpoints: statistics key (None: the checkpoint's only one)
    device: str = "cpu"  # checkpoints: torch device
    seed: int = 0  # random baseline (and noise=): seed of its generator


@dataclass
class LanguageConfig:
    """`protocol=language`: instruction swap, held-out paraphrases and the blind-language baseline."""

    conditions: list[str] = field(default_factory=lambda: ["swap", "paraphrase", "blind"])
    blind_instruction: str = "do the task"  # what the blind baseline reads instead of the instruction
    # The swap set. null: every candidate of each scene. A list of names for every task ([red,blue]; words of
    # one candidate joined by +: lift+red) or a mapping task -> names ({LiftNamedShape: [cube,ball]}). A name
    # that is not a candidate of a planned scene fails before any episode runs (sim_envs.language_eval).
    swap_targets: Any = None


@dataclass
class RobustnessConfig:
    """`protocol=robustness`: one perturbation dimension at a time (sim_envs.perturbations), plus combined levels."""

    dimensions: Any = "all"  # "all" or a list of camera, lighting, texture, distractors, noise, physics, latency, robot_init
    magnitudes: list[int] = field(default_factory=lambda: [1, 2, 3])  # 1 small, 2 middle, 3 large (0 = nominal)
    combined: list[str] = field(default_factory=lambda: ["none", "high"])  # shipped levels reported alongside


@dataclass
class EvalConfig:
    """`vla-eval policy=<checkpoint dir | random | no_vision | expert | kind:k=v;...> tasks=[...] levels=[...] seeds=N`."""

    policy: Any = "expert"  # one spec (vla.policy grammar) or a list: every policy replays the same initial states
    tasks: Any = "all"  # "all", a task name or a list
    dr: Any = None  # filled by the `dr` config group (dr=none|low|medium|high): one level, customizable
    levels: Any = None  # several shipped DR levels, e.g. [none,low,high] or "all"; None: the `dr` level
    seeds: Any = 10  # N held-out seeds per task x level (from 1_000_000), "a:b", or a list of seeds
    num_envs: int = 2  # parallel envs per task x level
    vector: str = "sync"  # sync (one process) | async (one process per env)
    sim: Any = None  # filled by the `sim` config group (sim=default|fast; sim.image_size=..., ...)
    execute_steps: Optional[int] = None  # actions of a chunk run open-loop before re-planning (None: all)
    video: VideoConfig = field(default_factory=VideoConfig)
    policy_options: PolicyContextConfig = field(default_factory=PolicyContextConfig)
    plot: bool = True
    output_dir: str = "outputs/eval"
    protocol: str = "dr"  # dr: policies x tasks x levels | language: swap, paraphrase, blind | robustness
    language: LanguageConfig = field(default_factory=LanguageConfig)
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    # LIBERO (sim_envs.libero; docs/libero.md). `suite` selects the LIBERO protocol instead of our tasks: a suite,
    # a list, `standard` (spatial, object, goal, 10) or `pro` (the LIBERO-PRO variants); tasks/levels/seeds/dr
    # do not apply there.
    suite: Any = None
    shard: Optional[str] = None  # "i/n": run the i-th of n equal blocks of the planned LIBERO episodes
    merge: Any = None  # directories of the shards of one LIBERO run to recombine (no episode runs)
    libero: LiberoConfig = field(default_factory=LiberoConfig)


def register_configs() -> None:
    from sim_envs.config import register_configs as register_sim_configs

    register_sim_configs()
    cs = ConfigStore.instance()
    cs.store(name="collect_schema", node=CollectConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="ground_schema", node=GroundConfig)
    from vla.model.schema import register_configs as register_model

    register_model()


def dr_config_from(node):
    """The `DRConfig` of the `dr` group's content (validated by the sim_envs schema)."""
    from omegaconf import OmegaConf

    from sim_envs.domain_randomization import DRConfig

    if node is None:
        raise ValueError("no domain-randomization config: select a level with dr=none|low|medium|high")
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DRConfig), node))


def sim_config_from(node):
    """The `SimConfig` of the `sim` group's content (validated by the sim_envs schema)."""
    from omegaconf import OmegaConf

    from sim_envs.config import SimConfig

    if node is None:
        raise ValueError("no env config: select one with sim=default|fast")
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SimConfig), node))
