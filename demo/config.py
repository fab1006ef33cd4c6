"""Schema of `vla-demo` (configs/demo.yaml): the whole loop on embedded defaults, sized for a 2-core CPU.

How the defaults were chosen (measurements, commands and what was tried: docs/history.md, D1-D2 for the
single-task recipe, L1 onwards for the language tasks of issue 18; what the demo does: docs/demo.md):
- Four language tasks, where only the instruction says what to do with which object (LiftNamedCube: one of
  3 coloured cubes; PlaceCubeOnNamedPlate: one of 2 cubes on one of 2 plates; LiftOrPushCube: lift or push
  one of 2 cubes; PlaceSideCubeOnPlate: the left or the right cube on the plate; 3, 4, 4 and 2 instructions
  per scene). A policy that ignores the words
  succeeds on at most one instruction of a scene, so the demo can show the point: the same scene, two
  instructions, two outcomes. The single-task demo (LiftCube, 38/40) could not: its instruction decides
  nothing. One RLDS dataset per task, mixed in training (`task_weights`, sampled as weight x transitions,
  `vla.data.sources`), as OpenVLA mixes its datasets; each task is un-normalized with its own dataset's
  statistics (`unnorm_key`), as OpenVLA evaluates.
- Language grounding, three parts (history.md L1-L2: without them the policy moved by < 1 mm when the
  colour word changed and scored 0/20 on LiftNamedCube; with them 15/20):
  - `every_target`: paired data, each scene demonstrated once per candidate (`episodes` counts scenes), so
    only the words explain why the same image gets different actions;
  - `vision_backbone=conv_keypoints` + `vision_film`: a small CNN with spatial-softmax keypoints whose
    channels the instruction modulates (the tiny ViT towers from scratch did not localize the cubes at all);
  - grounding pretraining (`ground_*`, sim_envs/grounding.py): the vision and the FiLM first learn, from
    rendered scenes with ground-truth labels, where the named object and its goal are, one keypoint put on
    the named object (`ground_keypoint_weight`), frames from the whole expert rollout
    (`ground_expert_steps`); `vla-train` starts from that model (`init_from`), as OpenVLA starts from
    pretrained towers, and keeps it frozen (`freeze_vision`: trained on, the keypoint left the named
    object; history.md L10).
- DART-style perturbed demonstrations (`collect_action_noise` 0.01 m: noise on the executed translation, the
  clean expert action is the label). Measured on LiftCube: from clean demonstrations the VLA never learned to
  correct its x/y position in closed loop (0-2/40 in every configuration tried); from perturbed ones, with the
  experts' capture-range grasp rule (sim_envs/experts.py), 38/40.
- Both cameras recorded at 84 px (the world-model stage reads both); the tiny VLA reads the wrist camera
  only (`policy_cameras`): on LiftCube it predicted the first x/y moves best and halves the vision cost
  (0.16-0.17 s per train step at batch 16 against about 0.26 s with both).
- OpenVLA-OFT's recipe: parallel decoding of a 4-step action chunk through the L1 regression head, with
  proprio as one extra token, plus learned per-slot action queries (`action_queries`; OFT feeds zeros,
  which in a 2-layer Llama gives every slot the same all-zero first-layer query). One forward pass per chunk
  keeps every evaluation stage to a minute or two.
- lr 3e-4 (configs/trainer/tiny.yaml's value; 1e-3 learned no better on LiftCube); `train_steps` and
  `episodes` are what the 30-minute budget leaves after the other stages (to be re-measured for four tasks).
- Evaluation sized for the budget: `eval_episodes` per task (x 3 policies), `language_seeds` x every
  candidate of each scene x (swap, blind), `robustness_episodes` per task at DR none and high.
- No image augmentation: the policy is evaluated without OpenVLA's test-time center crop, and DR `low`
  already jitters lighting, colours and cameras.
- One torch thread per process: the trainer shares 2 cores with its data-loader workers; a second thread
  costs more CPU per step (0.97 vs 0.82 CPU-s) for a model this small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

#: The language tasks the demo trains on by default (see the module docstring).
LANGUAGE_TASKS = ("LiftNamedCube", "PlaceCubeOnNamedPlate", "LiftOrPushCube", "PlaceSideCubeOnPlate")


@dataclass
class DemoConfig:
    """Collect expert demos of several language tasks with domain randomization -> train one tiny VLA on their
    mixture -> evaluate it per task next to baselines in sim -> the language protocol (instruction swap against
    the blind-language baseline) and a side-by-side video of one scene under two instructions -> success at
    DR none and high -> rehearse it in a learned world model -> drive the simulated arm through the ROS 2 bridge.

    Attributes:
        output_dir: everything lands here; `summary.json` is the result.
        tasks: sim tasks (names or gymnasium ids), one dataset each; the world-model and bridge stages run on
            the first. The language stage and the video use the tasks whose scenes offer several instructions.
        task_weights: mixture weight of each task's dataset in training (one per task; None: all 1.0). A
            dataset is sampled in proportion to weight x its transitions.
        dr_level: domain-randomization level of the demonstrations and of the evaluation.
        episodes: initial scenes per task; with `every_target` each is demonstrated once per candidate the
            scene offers (3, 4, 4 and 2 for the default tasks), otherwise once.
        every_target: paired language data (`sim_envs.collect.CollectSettings.every_target`).
        image_size: camera resolution used everywhere (collection, model, evaluation).
        cameras: cameras recorded and rendered in evaluation (`primary`, `wrist`); the world model reads them all.
        policy_cameras: the cameras the tiny VLA reads, a subset of `cameras`.
        collect_workers: expert processes.
        collect_action_noise: DART-style perturbation of the expert demonstrations (std in m of noise on the
            executed translation, the clean expert action is the label; `sim_envs.collect.CollectSettings`).
        ground_steps, ground_scenes, ground_frames, ground_expert_steps, ground_keypoint_weight: grounding
            pretraining (sim_envs.grounding.GroundingSettings: optimizer steps, rendered scenes per task, frames per
            (scene, candidate) rollout taken from expert steps 0..ground_expert_steps, weight of the loss putting a
            keypoint on the named object); 0 steps: none.
        freeze_vision: after grounding, `vla-train` keeps the vision and its instruction FiLM as grounding left
            them (`trainer.mode=freeze_vision`; trained on, they lose the named object: history.md L10).
        decoding, action_chunk, action_head, action_queries, use_proprio, vision_film, vision_backbone: the tiny
            VLA's options
            (configs/model/tiny.yaml; `autoregressive` / `tokens` / chunk 1 / no queries / no FiLM is plain
            OpenVLA).
        train_steps, batch_size, lr: optimization of `vla-train` (the rest: configs/trainer/tiny.yaml).
        torch_threads: torch CPU threads of the trainer and of the evaluated policy.
        train_overrides: further hydra overrides for `vla-train` (configs/train.yaml), applied last, so they
            win over the fields above, e.g. ["trainer.steps=100", "model.llm.num_layers=4"].
        eval_episodes: held-out seeds per task and policy (the same initial states for every policy).
        eval_envs: parallel envs in evaluation (their observations go through the policy as one batch).
        execute_steps: actions of each predicted chunk executed before the policy looks again (None: all).
        videos: evaluation episodes recorded as mp4 per task and policy.
        language_seeds: held-out scenes per task in the language stage; each is run once per instruction the
            scene offers (swap) and once more per instruction with the instruction hidden (blind).
        robustness_episodes: held-out seeds per task at each of DR `none` and `high` (tiny VLA only).
        with_world_model: run the world-model stage.
        with_bridge: run the sim-in-the-loop stage through the ROS 2 bridge (DDS on loopback).
        world_model_budget_s: seconds of world-model training at one thread (its step counts: demo.
            world_model_stage.train_config); it trains in the background while the VLA trains.
        world_model_initial_states: evaluation initial states rehearsed in the world model per policy.
        world_model_max_steps: steps of each imagined rollout.
        world_model_episodes: failed episodes of the first task collected for the world model alone (random
            actions, an expert lifting a cube the instruction did not name, missed grasps: `demo.main.
            WORLD_MODEL_DATA`), which the demonstrations never show (0: train on the demonstrations only).
        bridge_episodes: episodes driven through the bridge.
        budget_s: wall-time target for the whole demo (reported, not enforced).
        seed: seed of collection (episode i of every task uses seed + i), training and the random baseline.
    """

    output_dir: str = "outputs/demo"
    tasks: List[str] = field(default_factory=lambda: list(LANGUAGE_TASKS))
    task_weights: Optional[List[float]] = None
    dr_level: str = "low"
    episodes: int = 60
    every_target: bool = True
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
    vision_film: bool = True
    vision_backbone: str = "conv_keypoints"
    ground_steps: int = 2500
    ground_scenes: int = 200
    ground_frames: int = 3
    ground_expert_steps: int = 60
    ground_keypoint_weight: float = 1.0
    freeze_vision: bool = True
    train_steps: int = 4000
    batch_size: int = 16
    lr: float = 3e-4
    torch_threads: int = 1
    train_overrides: List[str] = field(default_factory=list)
    eval_episodes: int = 20
    eval_envs: int = 4
    execute_steps: Optional[int] = None
    videos: int = 1
    language_seeds: int = 10
    robustness_episodes: int = 10
    with_world_model: bool = True
    with_bridge: bool = True
    world_model_budget_s: float = 520.0
    world_model_initial_states: int = 8
    world_model_max_steps: int = 50
    world_model_episodes: int = 48
    bridge_episodes: int = 3
    budget_s: float = 1800.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not self.tasks:
            problems.append("tasks must name at least one task, e.g. tasks=[LiftNamedCube]")
        elif len(set(self.tasks)) != len(self.tasks):
            problems.append(f"tasks must not repeat a task (one dataset each), got {list(self.tasks)}")
        if self.task_weights is not None:
            weights = list(self.task_weights)
            if len(weights) != len(self.tasks):
                problems.append(f"task_weights needs one weight per task ({len(self.tasks)}: {list(self.tasks)}), "
                                f"got {len(weights)}: {weights}")
            elif any(not w >= 0 for w in weights) or not sum(weights) > 0:
                problems.append(f"task_weights must be >= 0 with a positive sum, got {weights}")
        if self.episodes < 2:
            problems.append(f"episodes must be >= 2 (training needs a validation split), got {self.episodes}")
        if self.world_model_episodes < 0:
            problems.append(f"world_model_episodes must be >= 0, got {self.world_model_episodes}")
        for name in ("eval_episodes", "language_seeds", "robustness_episodes"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
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

    def weights(self) -> list[float]:
        """The mixture weight of each task's dataset, in `tasks` order."""
        return [float(w) for w in self.task_weights] if self.task_weights is not None else [1.0] * len(self.tasks)

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
            f"model.vision_film={str(self.vision_film).lower()}",
            f"model.vision_backbone={self.vision_backbone}",
        ]

    def trainer_overrides(self) -> list[str]:
        return [
            f"trainer.steps={self.train_steps}",
            f"trainer.batch_size={self.batch_size}",
            f"trainer.lr={self.lr}",
            f"trainer.num_threads={self.torch_threads}",
            "data.image_augmentation=false",
            *(["trainer.mode=freeze_vision"] if self.freeze_vision and self.ground_steps > 0 else []),
        ]
