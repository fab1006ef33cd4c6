"""The user's path to a new robot, end to end through the real commands, on the UR5e (issue 19):

    vla-collect (Panda) -> vla-train (a tiny base from scratch)
    vla-bridge bridge=sim sim.env_kwargs.robot=ur5e record.enabled=true (scripted episodes, rosbag2)
      -> vla-convert -> vla-train trainer=lora init_from=<base> -> vla-eval sim.robot=ur5e -> vla-merge

Proprio: the bridge's sim arm publishes the env's 8-D pose proprio on /joint_states (`sim.joint_states=proprio`,
the default), the bridge records it and vla-convert stores it as the episode state, and vla-eval hands the
same 8-D vector to the policy. (`sim.joint_states=robot` would record joint positions, which vla-eval cannot
offer a policy.) Each stage's wall time is printed (`-s`) for docs/finetune_new_robot.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

for _module in ("cyclonedds", "rosbags", "mujoco", "peft"):  # the bridge's DDS, rosbag2, the simulator, LoRA
    pytest.importorskip(_module)

from vla.core.types import Observation, Policy  # noqa: E402

TESTS = Path(__file__).resolve().parent
# The tiny model of the other training tests: build, train and merge each take seconds.
MODEL = ["model.image_size=28", "model.dino.hidden_size=32", "model.dino.num_layers=2", "model.dino.num_heads=2",
         "model.dino.mlp_dim=64", "model.siglip.hidden_size=32", "model.siglip.num_layers=2",
         "model.siglip.num_heads=2", "model.siglip.mlp_dim=64", "model.llm.hidden_size=64", "model.llm.num_layers=2",
         "model.llm.num_heads=4", "model.llm.num_kv_heads=4", "model.llm.intermediate_size=128"]
SEEDS = [1_000_000, 1_000_001, 1_000_002]
EPISODE_STEPS = 10
NEW_KEY = "sim_ur5e_reach"


class ScriptedReach(Policy):
    """The scripted teleoperator of the recording: move the grip site to a point above the table and close the
    gripper on the way (it reads only the pose proprio the bridge gets, proprio[:3] = grip xyz)."""

    cameras = ("primary", "wrist")
    target = np.array([0.5, 0.05, 0.12])

    def act(self, observation: Observation) -> np.ndarray:
        a = np.zeros(7, np.float32)
        a[:3] = np.clip(0.5 * (self.target - observation.proprio[:3]), -0.04, 0.04)
        a[6] = 1.0 if observation.proprio[2] > 0.16 else 0.0
        return a


def scripted_reach() -> Policy:
    return ScriptedReach()


def _cli(module: str, *args: str, cwd: Path, timeout: int = 600) -> str:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{module} {' '.join(args)} failed:\n{out[-4000:]}"
    return out


def _train_args(data: Path, out: Path, cache: Path, steps: int) -> list[str]:
    return [f"data.datasets=[{{path: {data}}}]", "data.cameras=[primary,wrist]", "data.num_workers=0",
            "data.shuffle_buffer=64", "data.chunk_size=4", f"data.statistics_cache={cache}",
            "data.image_augmentation=false", f"output_dir={out}", f"trainer.steps={steps}", "trainer.batch_size=4",
            "trainer.save_every=0", "trainer.val_every=0", "trainer.log_every=1", "trainer.progress=false"]


@pytest.mark.slow
def test_bridge_record_convert_lora_eval_merge_on_the_ur5e(tmp_path):
    times: dict[str, float] = {}

    def stage(name: str, module: str, *args: str) -> str:
        t0 = time.perf_counter()
        out = _cli(module, *args, cwd=tmp_path)
        times[name] = round(time.perf_counter() - t0, 1)
        return out

    cache = tmp_path / "stats_cache"
    # 1. the base: a tiny policy trained from scratch on a few Panda expert episodes
    stage("vla-collect (Panda, 2 episodes)", "sim_envs.cli.collect", "task=LiftCube", "dr=none", "episodes=2",
          "sim=fast", "sim.image_size=64", f"output_dir={tmp_path / 'data'}", "workers=1",
          f"hydra.run.dir={tmp_path / 'collect'}")
    (panda_data,) = (tmp_path / "data").glob("*/1.0.0")
    stage("vla-train base (scratch, 6 steps)", "vla.cli.train", "trainer=tiny", *MODEL,
          *_train_args(panda_data, tmp_path / "base", cache, steps=6))
    base = tmp_path / "base" / "final"
    base_keys = sorted(json.loads((base / "config.json").read_text())["norm_stats"])
    assert base_keys == [panda_data.parent.name]

    # 2. the new robot: scripted episodes through the bridge's simulated UR5e, recorded to rosbag2
    bag = tmp_path / "bag"
    domain = 1 + os.getpid() % 19  # private DDS domain (1-19), apart from the other bridge tests' domains (20-229)
    stage("vla-bridge bridge=sim (UR5e, 3 episodes, recorded)", "robot_bridge.cli.bridge", "bridge=sim",
          f"domain_id={domain}", "policy.kind=callable", "policy.target=test_finetune_new_robot:scripted_reach",
          "sim.env_kwargs.robot=ur5e", "sim.env_kwargs.image_size=64",
          f"+sim.env_kwargs.max_episode_steps={EPISODE_STEPS}", f"sim.seeds=[{','.join(map(str, SEEDS))}]",
          "record.enabled=true", f"record.path={bag}", f"output_dir={tmp_path / 'bridge'}",
          f"hydra.run.dir={tmp_path / 'bridge'}")
    summary = json.loads((tmp_path / "bridge" / "summary.json").read_text())
    assert [e["seed"] for e in summary["episodes"]] == SEEDS
    assert all(e["steps"] == EPISODE_STEPS for e in summary["episodes"]), summary["episodes"]

    stage("vla-convert", "robot_bridge.cli.convert", f"bags=[{bag}]", f"output_dir={tmp_path / 'data'}",
          f"name={NEW_KEY}", "align=commands", "image_size=[64,64]",
          "+topics.cameras.wrist=/camera/wrist/image_raw",
          f"hydra.run.dir={tmp_path / 'convert'}")
    new_data = tmp_path / "data" / NEW_KEY / "1.0.0"
    from vla.data.rlds_reader import RLDSReader

    eps = list(RLDSReader(new_data).episodes(decode_images=False))
    assert len(eps) == len(SEEDS) and all(len(e["steps"]["action"]) == EPISODE_STEPS for e in eps)
    states = np.concatenate([e["steps"]["observation"]["state"] for e in eps])
    assert states.shape[1] == 8  # the env's pose proprio, what vla-eval gives the policy
    actions = np.concatenate([e["steps"]["action"] for e in eps])
    np.testing.assert_allclose(actions[:, :3], np.clip(0.5 * (ScriptedReach.target - states[:, :3]), -0.04, 0.04),
                               atol=1e-5)  # the recorded actions are the scripted commands on the recorded proprio

    # 3. LoRA on the base with the new robot's data
    stage("vla-train trainer=lora init_from=<base> (6 steps)", "vla.cli.train", "trainer=lora", f"init_from={base}",
          "trainer.lora.rank=4", "trainer.lora.alpha=8", "trainer.lr=5e-3", "trainer.num_threads=1",
          *_train_args(new_data, tmp_path / "lora", cache, steps=6))
    adapter, final = tmp_path / "lora" / "final_adapter", tmp_path / "lora" / "final"
    assert sorted(json.loads((final / "config.json").read_text())["norm_stats"]) == [NEW_KEY]
    assert sorted(json.loads((adapter / "dataset_statistics.json").read_text())) == [NEW_KEY]

    # 4. evaluated on the UR5e by vla-eval
    stage("vla-eval sim.robot=ur5e (2 episodes)", "sim_envs.cli.eval", f"policy={final}", "tasks=[LiftCube]",
          "dr=none", "seeds=2", "sim=fast", "sim.robot=ur5e", "sim.image_size=64",
          f"sim.max_episode_steps={EPISODE_STEPS}", "num_envs=1", f"output_dir={tmp_path / 'eval'}")
    (info_path,) = (tmp_path / "eval").glob("*/*/eval_info.json")
    info = json.loads(info_path.read_text())
    assert info["aggregated"]["n_episodes"] == 2 and info["config"]["sim"]["robot"] == "ur5e"
    assert all(e["error"] is None and e["steps"] > 0 for e in info["per_episode"]), info["per_episode"]
    assert json.loads((info_path.parents[1] / "summary.json").read_text())  # and the run's summary

    # 5. merged into a standalone checkpoint that acts as the adapter does
    stage("vla-merge", "vla.cli.merge", f"adapter={adapter}", f"output={tmp_path / 'merged'}",
          f"hydra.run.dir={tmp_path / 'merge'}")
    _merged_acts_as_adapter(base, adapter, tmp_path / "merged", new_data)
    print("\nstage times (s):", json.dumps(times, indent=1))


def _merged_acts_as_adapter(base: Path, adapter: Path, merged: Path, data: Path) -> None:
    """The adapter on its base (the `vla:path=<adapter dir>` policy, as vla-eval loads it) and the merged model
    act alike on recorded UR5e observations; the bare base does not."""
    from vla.data.rlds_reader import RLDSReader
    from vla.model.policy import VLAPolicy, load_checkpoint
    from vla.policy import make_policy

    adapter_policy = make_policy(f"vla:path={adapter}")[1]
    merged_policy = VLAPolicy.from_pretrained(merged)
    assert adapter_policy.unnorm_key == merged_policy.unnorm_key == NEW_KEY
    ep = next(iter(RLDSReader(data).episodes(decode_images=True)))
    steps = ep["steps"]
    obs = [Observation(images={"primary": steps["observation"]["image"][k], "wrist": steps["observation"]["wrist_image"][k]},
                       proprio=steps["observation"]["state"][k], instruction=_text(steps["language_instruction"][k]))
           for k in range(0, EPISODE_STEPS, 3)]
    want, got = np.stack(adapter_policy.act_batch(obs)), np.stack(merged_policy.act_batch(obs))
    np.testing.assert_allclose(got, want, atol=1e-5)
    stats = json.loads((adapter / "dataset_statistics.json").read_text())
    model, processor = load_checkpoint(base)
    base_policy = VLAPolicy(model, processor, norm_stats=stats, unnorm_key=NEW_KEY)
    assert not np.allclose(np.stack(base_policy.act_batch(obs)), want, atol=1e-5), "the adapter changed nothing"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
