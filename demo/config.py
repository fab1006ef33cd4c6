"""Schema of `vla-demo` (configs/demo.yaml): the whole loop on embedded defaults, sized for a 2-core CPU.

How the defaults were chosen (measurements, commands and what was tried: docs/demo.md):
- LiftCube: one object and the shortest expert episodes (17 steps on average); the cube's position, yaw and
  colour vary, so a blind policy misses (the no-vision baseline: 0/40). LiftCubeEasy is not used: its
  no-vision baseline already succeeds 27/40, so "3x the blind baseline" cannot be reached there.
- DART-style perturbed demonstrations (`collect_action_noise` 0.01 m: noise on the executed translation, the
  clean expert action is the label). Measured: from clean demonstrations the VLA never learned to correct its
  x/y position in closed loop (it descended ~7 cm from the cube, 0-2/40 successes in every configuration
  tried); from perturbed ones it centres the gripper over the cube within a few millimetres, and with the
  experts' capture-range grasp rule (sim_envs/experts.py) it also closes: 38/40.
- Both cameras recorded at 84 px (the world-model stage reads both); the tiny VLA reads the wrist camera
  only (`policy_cameras`). Measured on the 200-episode dataset with teacher forcing, the wrist-only model
  predicts the first x/y moves towards the cube best (1,500 steps: held-out L1 0.19 / 0.19 against 0.23 /
  0.21 for primary only; with both cameras the x/y predictions stay at the blind level), and one camera
  halves the vision cost: 0.16-0.17 s per train step at batch 16 against about 0.26 s with both.
- OpenVLA-OFT's recipe: parallel decoding of a 4-step action chunk through the L1 regression head, with
  proprio as one extra token, plus learned per-slot action queries (`action_queries`; OFT feeds zeros,
  which in a 2-layer Llama gives every slot the same all-zero first-layer query; a small gain measured).
  One forward pass per chunk keeps the evaluation under a minute for 3 x 40 episodes.
- lr 3e-4 (configs/trainer/tiny.yaml's value; 1e-3 learned no better) for 5,000 steps of batch 16: about
  14 minutes of one core, what the 30-minute budget leaves after the other stages.
- No image augmentation: the policy is evaluated without OpenVLA's test-time center crop, and DR `low`
  already jitters lighting, colours and cameras.
- One torch thread per process: the trainer shares 2 cores with its data-loader workers; a second thread
  costs more CPU per step (0.97 vs 0.82 CPU-s) for a model this small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


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
        cameras: cameras recorded and rendered in evaluation (`primary`, `wrist`); the world model reads them all.
        policy_cameras: the cameras the tiny VLA reads, a subset of `cameras`.
        collect_workers: expert processes.
        collect_action_noise: DART-style perturbation of the expert demonstrations (std in m of noise on the
            executed translation, the clean expert action is the label; `sim_envs.collect.CollectSettings`).
        decoding, action_chunk, action_head, action_queries, use_proprio: the tiny VLA's options
            (configs/model/tiny.yaml; `autoregressive` / `tokens` / chunk 1 / no queries is plain OpenVLA).
        train_steps, batch_size, lr: optimization of `vla-train` (the rest: configs/trainer/tiny.yaml).
        torch_threads: torch CPU threads of the trainer and of the evaluated policy.
        train_overrides: further hydra overrides for `vla-train` (configs/train.yaml), applied last, so they
            win over the fields above, e.g. ["trainer.steps=100", "model.llm.num_layers=4"].
        eval_episodes: held-out seeds per policy (the same initial states for every policy).
        eval_envs: parallel envs in evaluation (their observations go through the policy as one batch).
        execute_steps: actions of each predicted chunk executed before the policy looks again (None: all).
        videos: evaluation episodes recorded as mp4 per policy.
        with_world_model: run the world-model stage.
        with_bridge: run the sim-in-the-loop stage through the ROS 2 bridge (DDS on loopback).
        world_model_budget_s: seconds the world-model stage plans for (training takes ~60% of it).
        world_model_initial_states: evaluation initial states rehearsed in the world model per policy.
        world_model_max_steps: steps of each imagined rollout.
        bridge_episodes: episodes driven through the bridge.
        budget_s: wall-time target for the whole demo (reported, not enforced).
        seed: seed of collection (episode i uses seed + i), training and the random baseline.
    """

    output_dir: str = "outputs/demo"
    task: str = "LiftCube"
    dr_level: str = "low"
    episodes: int = 200
    image_size: int = 84
    cameras: List[str] = field(default_factory=lambda: ["primary", "wrist"])
    policy_cameras: List[str] = field(default_factory=lambda: ["wrist"])
    collect_workers: int = 2
    collect_action_noise: float = 0.01
    decoding: str = "parallel"
    action_chunk: int = 4
    action_head: str = "l1"
    action_queries: bool = True
    use_proprio: bool = True
    train_steps: int = 5000
    batch_size: int = 16
    lr: float = 3e-4
    torch_threads: int = 1
    train_overrides: List[str] = field(default_factory=list)
    eval_episodes: int = 40
    eval_envs: int = 4
    execute_steps: Optional[int] = None
    videos: int = 2
    with_world_model: bool = True
    with_bridge: bool = True
    world_model_budget_s: float = 300.0
    world_model_initial_states: int = 8
    world_model_max_steps: int = 50
    bridge_episodes: int = 3
    budget_s: float = 1800.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.episodes < 2:
            problems.append(f"episodes must be >= 2 (training needs a validation split), got {self.episodes}")
        if self.eval_episodes < 1:
            problems.append(f"eval_episodes must be >= 1, got {self.eval_episodes}")
        if not self.cameras or any(c not in ("primary", "wrist") for c in self.cameras):
            problems.append(f"cameras must be a non-empty subset of [primary, wrist], got {list(self.cameras)}")
        if not self.policy_cameras or any(c not in self.cameras for c in self.policy_cameras):
            problems.append(f"policy_cameras must be a non-empty subset of cameras {list(self.cameras)}, "
                            f"got {list(self.policy_cameras)}")
        if self.action_chunk < 1:
            problems.append(f"action_chunk must be >= 1, got {self.action_chunk}")
        if self.execute_steps is not None and not 1 <= self.execute_steps:
            problems.append(f"execute_steps must be >= 1 or null (the whole chunk), got {self.execute_steps}")
        if self.torch_threads < 1:
            problems.append(f"torch_threads must be >= 1, got {self.torch_threads}")
        if problems:
            raise ValueError("invalid vla-demo config: " + "; ".join(problems))

    def sim_config(self):
        """The `sim_envs.config.SimConfig` of collection and evaluation alike (the demo's image size and cameras;
        the rest as shipped), so the VLA is evaluated on the frames it was trained on."""
        from sim_envs.config import SimConfig

        return SimConfig(image_size=self.image_size, cameras=list(self.cameras))

    def model_overrides(self, proprio_dim: int) -> list[str]:
        """The `vla-train` overrides that build the demo's model (image size and `policy_cameras` follow the demo;
        `proprio_dim` is the sim's, `sim_envs.env.PROPRIO_DIM`)."""
        return [
            f"model.image_size={self.image_size}",
            f"model.cameras=[{','.join(self.policy_cameras)}]",
            f"model.decoding={self.decoding}",
            f"model.action_chunk={self.action_chunk}",
            f"model.action_head={self.action_head}",
            f"model.action_queries={str(self.action_queries).lower()}",
            f"model.use_proprio={str(self.use_proprio).lower()}",
            f"model.proprio_dim={proprio_dim if self.use_proprio else 0}",
        ]

    def trainer_overrides(self) -> list[str]:
        return [
            f"trainer.steps={self.train_steps}",
            f"trainer.batch_size={self.batch_size}",
            f"trainer.lr={self.lr}",
            f"trainer.num_threads={self.torch_threads}",
            "data.image_augmentation=false",
        ]
