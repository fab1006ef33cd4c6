"""The env side of evaluation: run settings, the per-sub-env wrapper, gymnasium vector envs.

`EvalSettings` says how episodes run (the `SimConfig` of the envs, parallel envs, chunk execution, videos);
`make_vector_env` builds `num_envs` copies of one task at one DR level, each wrapped in
`EvalEpisodeWrapper` (DR replay by seed, expert actions computed where the simulator lives).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from vla.core.gym import observation_from_gym
from vla.core.types import ACTION_DIM, validate_action

from sim_envs.config import SimConfig, make_env
from sim_envs.domain_randomization import DRConfig

logger = logging.getLogger(__name__)


@dataclass
class EvalSettings:
    """How episodes are run (not what is evaluated).

    Attributes:
        sim: how each env is built (`sim_envs.config.SimConfig`: image size, cameras rendered and shown to the
            policy, controller, episode limit, terminate on success).
        num_envs: parallel envs per task x level (gymnasium vector env).
        vector: "sync" (one process) or "async" (one process per env).
        execute_steps: actions of a returned chunk executed open-loop before the policy is asked again
            (None = the whole chunk; 1 = re-plan every step).
        videos_per_cell: episodes recorded as mp4 per task x level (the first seeds); 0 = none.
        video_dir: where videos go (required when videos_per_cell > 0).
        video_fps: frames per second of the videos.
        progress: show a tqdm bar.
        dr_configs: level name -> `DRConfig` to use instead of the shipped `configs/dr/<level>.yaml`
            (a level customized on the command line); None: the shipped levels.
    """

    sim: SimConfig = field(default_factory=SimConfig)
    num_envs: int = 1
    vector: str = "sync"
    execute_steps: int | None = None
    videos_per_cell: int = 0
    video_dir: str | Path | None = None
    video_fps: float = 10.0
    progress: bool = True
    dr_configs: dict[str, DRConfig] | None = None

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        if self.vector not in ("sync", "async"):
            raise ValueError(f"vector must be 'sync' or 'async', got {self.vector!r}")
        if self.execute_steps is not None and self.execute_steps < 1:
            raise ValueError(f"execute_steps must be >= 1 or None (whole chunk), got {self.execute_steps}")
        if self.videos_per_cell > 0 and self.video_dir is None:
            raise ValueError("videos_per_cell > 0 needs a video_dir")


class EvalEpisodeWrapper(gymnasium.Wrapper):
    """Wraps each sub-env: replays DR parameters by seed and, for the expert, computes its action there.

    gymnasium vector envs pass one `options` dict to every sub-env, so a replay sends the DR parameters of
    the batch keyed by seed (`options["dr_params_by_seed"]`) and each sub-env takes its own. Infos gain
    `dr_params_json` (a vector env would split a dict into per-key arrays) and, with the expert,
    `expert_action` and `expert_error` (the scripted expert reads privileged state, so it must live in the
    process that holds the simulator).
    """

    def __init__(self, env, with_expert: bool = False):
        super().__init__(env)
        self._expert = None
        if with_expert:
            from sim_envs.experts import make_expert

            self._expert = make_expert(env)

    def reset(self, *, seed=None, options=None):
        options = dict(options or {})
        by_seed = options.pop("dr_params_by_seed", None)
        if by_seed and seed is not None and by_seed.get(int(seed)):  # {}: nothing recorded, sample anew
            options["dr_params"] = by_seed[int(seed)]
        obs, info = self.env.reset(seed=seed, options=options or None)
        info = dict(info)
        info["dr_params_json"] = json.dumps(info.get("dr_params", {}), sort_keys=True, default=_json_default)
        if self._expert is not None:
            self._expert.reset(info.get("instruction", ""))
        return obs, self._add_expert(obs, info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._add_expert(obs, dict(info))

    def _add_expert(self, obs, info):
        if self._expert is None:
            return info
        try:
            a = self._expert.act(observation_from_gym(obs, info))
            info["expert_action"] = validate_action(a, allow_chunk=False, name="expert action")
            info["expert_error"] = ""
        except Exception as e:  # noqa: BLE001  (an expert failure fails the episode, not the run)
            info["expert_action"] = np.full(ACTION_DIM, np.nan, np.float32)
            info["expert_error"] = f"{type(e).__name__}: {e}"
        return info


def make_eval_env(task: str, dr_level: str, settings: EvalSettings, with_expert: bool = False) -> gymnasium.Env:
    """One wrapped env (this runs inside the vector env's worker process for `vector=async`)."""
    dr = (settings.dr_configs or {}).get(dr_level, dr_level)
    return EvalEpisodeWrapper(make_env(task, sim=settings.sim, dr=dr), with_expert)


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def tensorflow_loaded() -> bool:
    """True when TensorFlow's native library is loaded here (then rendering must happen elsewhere)."""
    return "tensorflow.python" in sys.modules or "tensorflow.python.pywrap_tensorflow" in sys.modules


def make_vector_env(task: str, dr_level: str, num_envs: int, settings: EvalSettings, *, with_expert: bool = False):
    """A gymnasium vector env of `num_envs` copies of `task` at `dr_level`, autoreset disabled.

    The runner resets sub-envs itself (`options["reset_mask"]`) so that every episode gets its planned seed.
    """
    import functools

    from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

    fns = [functools.partial(make_eval_env, task, dr_level, settings, with_expert) for _ in range(num_envs)]
    vector = settings.vector
    if vector == "sync" and tensorflow_loaded():
        logger.warning(
            "TensorFlow is loaded in this process, and MuJoCo's software renderer (llvmpipe) segfaults next to "
            "it (its LLVM calls land in TensorFlow's LLVM copy); running the envs in subprocesses (vector=async)"
        )
        vector = "async"
    cls = SyncVectorEnv if vector == "sync" else AsyncVectorEnv
    kwargs: dict[str, Any] = dict(autoreset_mode=AutoresetMode.DISABLED)
    if cls is AsyncVectorEnv:
        kwargs["context"] = "spawn"  # EGL contexts and threads do not survive fork
    return cls(fns, **kwargs)
