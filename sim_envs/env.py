"""`TabletopEnv`: a gymnasium env composed of scene + task + controller + domain randomization + cameras.

    import gymnasium, sim_envs
    env = gymnasium.make("vla_sim/LiftCube-v0", dr_level="low", image_size=128)
    obs, info = env.reset(seed=0)          # obs: {"primary", "wrist": uint8 (H, W, 3), "proprio": float32 (8,)}
    obs, reward, terminated, truncated, info = env.step(action)   # action: the 7-D contract action
    env.reset(seed=0, options={"dr_params": info0["dr_params"]})   # exact replay of an episode
    env.reset(seed=0, options={"target": 1, "templates": "heldout"})  # same scene, candidate 1 named, paraphrased

Random streams: the episode seed is split (`SeedSequence.spawn`) into independent generators for domain
randomization, the task layout and sensor noise, so replacing the DR parameters on replay leaves the layout
and the noise untouched.
"""

from __future__ import annotations

import collections
import json
import logging
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from vla.core.types import validate_action

from sim_envs.controller import ControllerConfig, EEDeltaController
from sim_envs.domain_randomization import DomainRandomizer, DRConfig, load_dr_config, sample_dr_params
from sim_envs.robot import Physics
from sim_envs.robots import DEFAULT_ROBOT, RobotDescription, get_robot
from sim_envs.scene import DISTRACTOR_PREFIX, SceneBuilder
from sim_envs.tasks import make_task
from sim_envs.tasks.base import Task

logger = logging.getLogger(__name__)

PROPRIO_DIM = 8
VALID_CAMERAS = ("primary", "wrist")
#: Physics steps with the robot holding still after placing objects, so contacts settle before step 0.
SETTLE_STEPS = 25
#: Keys of a task's `privileged_state` that name its goal place; `object_state` ends with that place's xyz.
GOAL_KEYS = ("place_pos", "target_pos")
#: `reset(options=...)` keys: DR replay, which candidate the instruction names, which template set / template.
RESET_OPTIONS = ("dr_params", "target", "templates", "template")


class TabletopEnv(gymnasium.Env):
    """Tabletop manipulation with language instructions on one robot (`sim_envs.robots`; see module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        task: str | Task = "LiftCube",
        *,
        robot: str | RobotDescription = DEFAULT_ROBOT,
        dr_level: str = "none",
        dr_config: DRConfig | None = None,
        image_size: int | tuple[int, int] = 224,
        cameras: tuple[str, ...] | list[str] = VALID_CAMERAS,
        controller: ControllerConfig | None = None,
        control_hz: float | None = None,
        terminate_on_success: bool = True,
        render_mode: str | None = None,
    ):
        self.task = make_task(task) if isinstance(task, str) else task
        self.dr_config = dr_config if dr_config is not None else load_dr_config(dr_level)
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        if min(self.image_size) < 8 or max(self.image_size) > 640:
            raise ValueError(f"image_size must be between 8 and 640 pixels, got {self.image_size}")
        self.cameras = tuple(cameras)
        bad = [c for c in self.cameras if c not in VALID_CAMERAS]
        if bad or "primary" not in self.cameras:
            raise ValueError(f"cameras must include 'primary' and come from {VALID_CAMERAS}, got {self.cameras}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.terminate_on_success = terminate_on_success
        cfg = controller or ControllerConfig()
        if control_hz is not None:
            cfg = ControllerConfig(**{**vars(cfg), "control_hz": float(control_hz)})

        self.robot = get_robot(robot)
        scene = SceneBuilder.tabletop(self.robot)
        self.task.build(scene)
        scene.add_distractor_pool()  # parked unless a DR level puts distractors on the table
        model = scene.compile()
        self.physics = Physics(model, robot=self.robot)
        model.dof_damping[self.physics.arm_dof] *= cfg.joint_damping_scale
        self.controller = EEDeltaController(self.physics, cfg)
        free_bodies = [model.body(model.jnt_bodyid[j]).name for j in range(model.njnt) if model.jnt_type[j] == 0]
        self.randomizer = DomainRandomizer(model, object_bodies=free_bodies)
        #: The task's movable objects (not the DR distractor pool), in model order (`object_order` puts the
        #: named ones first: `object_state`'s layout).
        self.object_names = [b for b in free_bodies if not b.startswith(DISTRACTOR_PREFIX)]
        self._renderer = None

        h, w = self.image_size
        obs_spaces: dict[str, spaces.Space] = {c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in self.cameras}
        obs_spaces["proprio"] = spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32)
        self.observation_space = spaces.Dict(obs_spaces)
        lim = np.array([cfg.max_delta_pos] * 3 + [cfg.max_delta_rot] * 3 + [1.0], np.float32)
        self.action_space = spaces.Box(np.append(-lim[:6], 0.0).astype(np.float32), lim, dtype=np.float32)

        self._episode_seed: int | None = None
        self._dr_params: dict[str, Any] = {}
        self._task_params: dict[str, Any] = {}
        self._noise_rng = np.random.default_rng(0)
        self._latency: collections.deque = collections.deque()
        self._steps = 0
        self._wrong_target = False

    # -- gymnasium API -------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        import mujoco

        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - set(RESET_OPTIONS)
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; supported: {list(RESET_OPTIONS)}")
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        self._episode_seed = int(seed)
        dr_rng, task_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
        self._noise_rng = noise_rng

        model, data = self.physics.model, self.physics.data
        self.randomizer.restore()
        mujoco.mj_resetData(model, data)
        self.physics.reset_robot()
        self._task_params = self.task.reset_episode(
            self.physics, task_rng, target=options.get("target"), templates=options.get("templates", "train"),
            template=options.get("template"))
        params = options.get("dr_params")
        if params is None:
            params = sample_dr_params(self.dr_config, dr_rng, named_geoms=self.task.named_geoms, n_lights=model.nlight,
                                      layout=self.randomizer.layout(self.physics),
                                      n_arm_joints=len(self.physics.arm_qpos))
        self._dr_params = params
        self.randomizer.apply(params)
        self.randomizer.apply_state(self.physics, params)  # distractors, arm start jitter: before settling
        # Masses changed: recompute the derived constants (invweight0, ...) that contact softness uses; stale
        # ones make heavy objects' contacts explode. mj_setConst works at qpos0, so keep the placed state.
        state = data.qpos.copy(), data.qvel.copy()
        mujoco.mj_setConst(model, data)
        data.qpos[:], data.qvel[:] = state
        for _ in range(SETTLE_STEPS):
            mujoco.mj_step(model, data)
        self.controller.reset()
        self._latency = collections.deque([self._hold_action()] * int(params["sensor"]["action_latency_steps"]))
        self._steps = 0
        self._wrong_target = False
        info = {
            **self._language_info(),
            "success": self.task.success(self.physics),
            "object_state": self.object_state(),
            "seed": self._episode_seed,
            "dr_params": params,
            "task": self.task.name,
        }
        return self._observation(), info

    def step(self, action):
        if self._episode_seed is None:
            raise RuntimeError("call reset() before step()")
        action = validate_action(action, allow_chunk=False)
        self._latency.append(action)
        self.controller.step(self._latency.popleft())
        self._steps += 1
        success = self.task.success(self.physics)
        self._wrong_target = self._wrong_target or bool(self.task.wrong_target(self.physics))
        terminated = bool(success and self.terminate_on_success)
        info = {**self._language_info(), "success": success, "object_state": self.object_state()}
        return self._observation(), float(success), terminated, False, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return np.concatenate([self._render_camera(c) for c in self.cameras], axis=1)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # -- extras (reachable through vector envs with `envs.call(name)`) -------------------------------------------
    def privileged_state(self, target: int | None = None) -> dict[str, Any]:
        """Ground truth for scripted experts: end-effector pose, gripper, and the task's quantities for the
        named candidate, or for candidate `target` (an expert acting on another object: wrong-target data)."""
        p = self.physics
        state = {"task": self.task.name, "ee_pos": p.ee_pos(), "ee_yaw": float(p.ee_rpy()[2]),
                 "gripper_opening": p.gripper_opening(), "step": self._steps,
                 "finger_half_depth": self.robot.finger_half_depth}
        if target is None or target == self.task.target:
            state.update(self.task.privileged_state(p))
        elif 0 <= target < len(self.task.candidates):
            state.update(self.task.privileged_state(p, target=target))
        else:
            raise ValueError(f"target {target} out of range: {len(self.task.candidates)} candidate(s)")
        return state

    def object_order(self) -> list[str]:
        """`object_names` with the bodies the instruction's named candidate acts on first (`candidate_bodies`
        of referring tasks; the model order otherwise): `object_state`'s layout in this episode."""
        bodies = getattr(self.task, "candidate_bodies", None)
        named = [b for b in (bodies(self.task.target) if bodies else ()) if b in self.object_names]
        return named + [b for b in self.object_names if b not in named]

    def object_state(self) -> np.ndarray:
        """float32 (3 K [+ 3],): the xyz (m, world frame) of the task's K movable objects in `object_order()` (the
        named object first), then, for a task with a goal place (a plate, a push target: `GOAL_KEYS` of the
        expert's `privileged_state`), that goal's xyz; in `info` after every reset and step. Privileged (a camera
        does not measure it): what a world model can predict and judge success from (`vla-collect
        object_state=true` records it as the observation feature `object_state`). Named first, because the
        success of "lift the red cube" is the first object's height whichever slot the red cube has, which a small
        success head can learn; the goal because "the cube is on the plate" cannot be judged without the plate."""
        parts = [self.physics.body_pos(b) for b in self.object_order()]
        goal = self._goal_position()
        if goal is not None:
            parts.append(goal)
        return np.concatenate(parts or [np.zeros(0)]).astype(np.float32)

    def _goal_position(self) -> np.ndarray | None:
        """The named goal's xyz (`place_pos` or `target_pos` of the expert's state), or None for a task without one."""
        state = self.task.privileged_state(self.physics)
        key = next((k for k in GOAL_KEYS if k in state), None)
        return None if key is None else np.asarray(state[key], np.float64)

    def joint_state(self) -> dict[str, list]:
        """The robot's joints as a ROS JointState carries them: arm then finger joint names (the model's, e.g.
        `ur5e_shoulder_pan_joint`), positions (rad / m) and velocities. For `robot_bridge.sim_arm`."""
        p, names = self.physics, [*self.robot.arm_joints, *self.robot.finger_joints]
        qpos = np.concatenate([p.arm_qpos, p.finger_qpos])
        dofs = np.array([p.model.joint(n).dofadr[0] for n in names])
        return {"name": names, "position": p.data.qpos[qpos].tolist(), "velocity": p.data.qvel[dofs].tolist()}

    @property
    def dr_params(self) -> dict[str, Any]:
        return self._dr_params

    @property
    def task_params(self) -> dict[str, Any]:
        """The layout drawn at reset (colours, positions, template index): JSON-serializable."""
        return self._task_params

    @property
    def control_dt(self) -> float:
        return self.controller.control_dt

    # -- internals -----------------------------------------------------------------------------------------------
    def _language_info(self) -> dict[str, Any]:
        """What the instruction names; `wrong_target`: a non-named object was acted on at any step so far."""
        return {"instruction": self.task.instruction, "target": int(self.task.target),
                "num_targets": len(self.task.candidates), "candidates_json": json.dumps(self.task.candidates),
                "wrong_target": self._wrong_target}

    def _hold_action(self) -> np.ndarray:
        return np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32)

    def _render_camera(self, camera: str) -> np.ndarray:
        import mujoco

        if self._renderer is None:  # created lazily: vector-env workers each make their own GL context
            self._renderer = mujoco.Renderer(self.physics.model, *self.image_size)
        self._renderer.update_scene(self.physics.data, camera=camera)
        return self._renderer.render()

    def _observation(self) -> dict[str, np.ndarray]:
        sensor = self._dr_params["sensor"]
        obs: dict[str, np.ndarray] = {}
        for cam in self.cameras:
            img = self._render_camera(cam)
            if sensor["image_noise_std"] > 0:
                noise = self._noise_rng.normal(0.0, sensor["image_noise_std"], img.shape)
                img = np.clip(img + noise, 0, 255).astype(np.uint8)
            obs[cam] = img
        proprio = self.physics.proprio()
        if sensor["proprio_noise_std"] > 0:
            proprio = proprio + self._noise_rng.normal(0.0, sensor["proprio_noise_std"], proprio.shape).astype(np.float32)
        obs["proprio"] = proprio.astype(np.float32)
        return obs


__all__ = ["PROPRIO_DIM", "TabletopEnv"]
