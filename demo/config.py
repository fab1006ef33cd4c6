"""Schema of `vla-demo` (configs/demo.yaml): the whole loop on embedded defaults, sized for a 2-core CPU."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DemoConfig:
    """Collect expert demos with domain randomization -> train a tiny VLA -> evaluate it next to baselines
    in sim -> rehearse it in a learned world model -> drive the simulated arm through the ROS 2 bridge.

    Attributes:
        output_dir: everything lands here; `summary.json` is the result.
        task: sim task (name or gymnasium id).
        dr_level: domain-randomization level of the demonstrations and of the evaluation.
        episodes: expert demonstrations to collect.
        image_size: camera resolution used everywhere (collection, model, evaluation).
        collect_workers: expert processes.
        train_overrides: hydra overrides for `vla-train` (configs/train.yaml), e.g. ["trainer.steps=800"].
        eval_episodes: held-out seeds per policy (the same initial states for every policy).
        eval_envs: parallel envs in evaluation.
        videos: evaluation episodes recorded as mp4 per policy.
        with_world_model: run the world-model stage.
        with_bridge: run the sim-in-the-loop stage through the ROS 2 bridge (DDS on loopback).
        bridge_episodes: episodes driven through the bridge.
        budget_s: wall-time target for the whole demo (reported, not enforced).
    """

    output_dir: str = "outputs/demo"
    task: str = "LiftCube"
    dr_level: str = "low"
    episodes: int = 150
    image_size: int = 112
    collect_workers: int = 2
    train_overrides: list[str] = field(default_factory=list)
    eval_episodes: int = 40
    eval_envs: int = 4
    videos: int = 2
    with_world_model: bool = True
    with_bridge: bool = True
    bridge_episodes: int = 3
    budget_s: float = 1800.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.episodes < 2:
            raise ValueError(f"episodes must be >= 2 (training needs a validation split), got {self.episodes}")
        if self.eval_episodes < 1:
            raise ValueError(f"eval_episodes must be >= 1, got {self.eval_episodes}")
