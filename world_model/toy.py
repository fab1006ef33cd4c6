"""SquareWorld: a tiny procedural gymnasium env for world-model tests, docs and smoke runs.

A red square (the "gripper") moves over a table seen from above (`primary`) and from a camera that follows
it (`wrist`); its height shows as its size and the gripper opening as its centre colour. The task: put the
square onto the green target and lower it with the gripper closed. It follows the same observation / info /
action contract as the MuJoCo tasks in `sim_envs` (dict of camera images + `proprio`, `instruction`,
`success`, `seed`, `dr_params`), so the world-model code paths are the ones used with the real sim.

`VisualServoPolicy` acts from pixels only (colour thresholds on the primary camera), so it can act both in
this env and inside the world model's decoded frames; its gains and noise give policy variants of graded
quality for ranking tests.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from vla.core.episode import Episode, EpisodeMetadata
from vla.core.gym import observation_from_gym
from vla.core.types import Observation, Policy, validate_action
from vla.policy.baselines import RandomPolicy

ENV_ID = "world_model/SquareWorld-v0"
INSTRUCTION = "put the red square on the green target"
_MOVE_SCALE = 4.0  # table units per action metre
_SUCCESS_RADIUS = 0.18
_SUCCESS_Z = 0.3


def _draw_square(img: np.ndarray, cx: float, cy: float, half: float, color, lo: float = -1.0, hi: float = 1.0) -> None:
    """Fill an axis-aligned square given in table coordinates [lo, hi]^2 (y up) into img (H, W, 3)."""
    h, w = img.shape[:2]
    sx, sy = (w - 1) / (hi - lo), (h - 1) / (hi - lo)
    x0, x1 = int(round((cx - half - lo) * sx)), int(round((cx + half - lo) * sx))
    y0, y1 = int(round((hi - cy - half) * sy)), int(round((hi - cy + half) * sy))
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, w - 1), min(y1, h - 1)
    if x1 >= x0 and y1 >= y0:
        img[y0 : y1 + 1, x0 : x1 + 1] = color


class SquareWorldEnv(gym.Env):
    """gymnasium-style env (registered as `world_model/SquareWorld-v0`); see the module docstring.

    `terminate_on_success=False` runs an episode on to its step limit after success (each step's reward says
    whether that step is solved): data collection for a success classifier that should see solved states
    rather than only the one transition into them.
    """

    metadata = {"render_modes": []}

    def __init__(self, image_size: int = 64, cameras=("primary", "wrist"), dr_level: str = "low",
                 max_episode_steps: int = 30, terminate_on_success: bool = True):
        self.terminate_on_success = bool(terminate_on_success)
        self.image_size = int(image_size)
        self.cameras = tuple(cameras)
        self.dr_level = dr_level
        self.max_episode_steps = int(max_episode_steps)
        s = self.image_size
        spaces = {c: gym.spaces.Box(0, 255, (s, s, 3), np.uint8) for c in self.cameras}
        spaces["proprio"] = gym.spaces.Box(-2, 2, (4,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(
            np.array([-0.05] * 6 + [0.0], np.float32), np.array([0.05] * 6 + [1.0], np.float32)
        )
        self._rng = np.random.default_rng(0)
        self._t = 0

    # -- gymnasium API -------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        seed = int(self._rng.integers(0, 2**31 - 1)) if seed is None else int(seed)
        rng = np.random.default_rng(seed)
        params = (options or {}).get("dr_params")
        if params is None:
            amp = {"none": 0.0, "low": 0.1, "medium": 0.2, "high": 0.35}.get(self.dr_level, 0.1)
            params = {
                "background": (np.array([0.55, 0.55, 0.6]) + rng.uniform(-amp, amp, 3)).round(4).tolist(),
                "target": rng.uniform(-0.6, 0.6, 2).round(4).tolist(),
                "start": rng.uniform(-0.7, 0.7, 2).round(4).tolist(),
            }
        self.dr_params = {k: list(v) for k, v in params.items()}
        self.pos = np.array([*self.dr_params["start"], 0.8], np.float64)
        self.target = np.array(self.dr_params["target"], np.float64)
        self.grip = 1.0
        self._t = 0
        self.seed = seed
        info = {"instruction": INSTRUCTION, "success": self._success(), "seed": seed, "dr_params": self.dr_params}
        return self._obs(), info

    def step(self, action):
        a = validate_action(action, allow_chunk=False)
        self.pos[:3] = np.clip(self.pos[:3] + _MOVE_SCALE * a[:3], [-1, -1, 0], [1, 1, 1])
        self.grip = float(a[6])
        self._t += 1
        success = self._success()
        terminated = success and self.terminate_on_success
        truncated = self._t >= self.max_episode_steps and not terminated
        info = {"instruction": INSTRUCTION, "success": success}
        return self._obs(), float(success), terminated, truncated, info

    # -- internals -----------------------------------------------------------------------------------------
    def _success(self) -> bool:
        near = float(np.linalg.norm(self.pos[:2] - self.target)) < _SUCCESS_RADIUS
        return bool(near and self.pos[2] < _SUCCESS_Z and self.grip < 0.5)

    def _proprio(self) -> np.ndarray:
        return np.array([*self.pos, self.grip], np.float32)

    def _render(self, camera: str) -> np.ndarray:
        s = self.image_size
        bg = (np.array(self.dr_params["background"]) * 255).clip(0, 255).astype(np.uint8)
        img = np.empty((s, s, 3), np.uint8)
        img[:] = bg
        half = 0.05 + 0.07 * self.pos[2]
        if camera == "primary":
            lo, hi, off = -1.0, 1.0, np.zeros(2)
        else:  # wrist: follows the square, twice the zoom
            lo, hi, off = -0.5, 0.5, self.pos[:2]
            img[:, :] = (bg * 0.8).astype(np.uint8)
        t = self.target - off
        _draw_square(img, t[0], t[1], 0.2, (40, 200, 60), lo, hi)
        p = self.pos[:2] - off
        _draw_square(img, p[0], p[1], half, (220, 40, 40), lo, hi)
        inner = (250, 250, 250) if self.grip > 0.5 else (40, 20, 20)
        _draw_square(img, p[0], p[1], half * 0.45, inner, lo, hi)
        return img

    def _obs(self) -> dict:
        obs = {c: self._render(c) for c in self.cameras}
        obs["proprio"] = self._proprio()
        return obs


def register() -> None:
    """Register `world_model/SquareWorld-v0` with gymnasium (idempotent)."""
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=SquareWorldEnv, disable_env_checker=True, order_enforce=False)


def _centroid(mask: np.ndarray) -> np.ndarray | None:
    ys, xs = np.nonzero(mask)
    if len(xs) < 2:
        return None
    h, w = mask.shape
    return np.array([xs.mean() / (w - 1) * 2 - 1, 1 - ys.mean() / (h - 1) * 2])


class VisualServoPolicy(Policy):
    """Acts from the primary image only: finds the red square and the green target by colour.

    `gain` scales the approach speed, `noise` adds Gaussian action noise (std, metres), `bias` adds a
    constant drift; weaker settings give graded success rates for ranking tests.
    """

    chunk_size = 1
    cameras = ("primary",)

    def __init__(self, gain: float = 0.6, noise: float = 0.0, bias: float = 0.0, seed: int = 0, name: str = ""):
        self.gain, self.noise, self.bias = float(gain), float(noise), float(bias)
        self.name = name or f"servo(g={gain},n={noise},b={bias})"
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._last_target = None

    def reset(self, instruction: str) -> None:
        self._rng = np.random.default_rng(self._seed)
        self._last_target = None

    def act(self, observation: Observation) -> np.ndarray:
        img = observation.images["primary"].astype(np.int16)
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
        # Colour dominance rather than absolute levels: robust to lighting DR and to blurry (decoded) frames.
        me = _centroid(r - np.maximum(g, b) > 50)
        tgt = _centroid(g - np.maximum(r, b) > 40)
        # The square can hide the target: keep the last place it was seen (reset per episode).
        tgt = self._last_target if tgt is None else tgt
        self._last_target = tgt
        a = np.zeros(7, np.float32)
        a[6] = 1.0
        if me is not None and tgt is not None:
            d = tgt - me
            dist = float(np.linalg.norm(d))
            a[:2] = np.clip(d / _MOVE_SCALE * self.gain, -0.05, 0.05)
            if dist < 0.12:
                a[2] = -0.05
                a[6] = 0.0
            else:
                a[2] = 0.02
        a[:2] += self.bias
        a[:3] += self._rng.normal(0, self.noise, 3)
        a[:6] = np.clip(a[:6], -0.05, 0.05)
        return a


def varied_policies(n: int, seed: int = 7, random_every: int = 6) -> list[Policy]:
    """n policies for varied training data: visual servos with a random gain (log-uniform in [0.05, 1]) and
    action noise (uniform in [0, 0.03]), and every `random_every`-th a random policy. A world model trained
    only on a few fixed servos sees few slow, small or noisy motions; policies under evaluation make them."""
    rng = np.random.default_rng(seed)
    out: list[Policy] = []
    for i in range(n):
        if random_every and i % random_every == random_every - 1:
            out.append(RandomPolicy.symmetric(0.05, 0.0, seed=seed * 1000 + i))
        else:
            gain = float(np.exp(rng.uniform(np.log(0.05), np.log(1.0))))
            out.append(VisualServoPolicy(gain=gain, noise=float(rng.uniform(0, 0.03)), seed=seed * 1000 + i))
    return out


def collect_episodes(num_episodes: int, *, seed: int = 0, image_size: int = 64, max_steps: int = 30,
                     cameras=("primary", "wrist"), policies: list[Policy] | None = None,
                     terminate_on_success: bool = True) -> list[Episode]:
    """Roll out `policies` (cycled; default: servo variants and random) in SquareWorld as `Episode`s.

    `terminate_on_success=False`: every episode runs `max_steps` steps, each labelled solved or not (its
    reward); the episode counts as successful if any step was."""
    if policies is None:
        policies = [VisualServoPolicy(0.6, 0.0), VisualServoPolicy(0.4, 0.01, seed=1), VisualServoPolicy(0.8, 0.03, seed=2),
                    RandomPolicy.symmetric(0.05, 0.0, seed=3), VisualServoPolicy(0.3, 0.02, 0.01, seed=4)]
    env = SquareWorldEnv(image_size=image_size, cameras=cameras, max_episode_steps=max_steps,
                         terminate_on_success=terminate_on_success)
    episodes = []
    for i in range(num_episodes):
        policy = policies[i % len(policies)]
        obs, info = env.reset(seed=seed + i)
        policy.reset(info["instruction"])
        frames = {c: [obs[c]] for c in cameras}
        states, actions, rewards = [obs["proprio"]], [], []
        success = False
        for _ in range(max_steps):
            observation = observation_from_gym(obs, cameras=cameras, instruction=info["instruction"])
            a = validate_action(policy.act(observation), allow_chunk=False)
            obs, r, term, trunc, step_info = env.step(a)
            actions.append(a)
            rewards.append(r)
            success = success or step_info["success"]
            if term or trunc:
                break
            for c in cameras:
                frames[c].append(obs[c])
            states.append(obs["proprio"])
        # RLDS stores (observation_t, action_t); the final observation after the last action is dropped.
        t = len(actions)
        episodes.append(Episode(
            images={c: np.stack(frames[c][:t]) for c in cameras},
            state=np.stack(states[:t]),
            action=np.stack(actions),
            instruction=INSTRUCTION,
            metadata=EpisodeMetadata(episode_id=f"square_{seed + i:05d}", success=success, seed=seed + i,
                                     randomization=env.dr_params, task=ENV_ID),
            reward=np.asarray(rewards, np.float32),
        ))
    return episodes
