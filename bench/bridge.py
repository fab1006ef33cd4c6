"""ROS 2 bridge benchmark: latency across processes, image streaming, safety under fuzzing, stale-sensor stops.

    python bench/bridge.py                  # ~4-5 min; writes bench/results/bridge.json and bridge_async.json
    python bench/bridge.py --tiny-vla       # also the tiny VLA preset behind the bridge, synchronously
    python bench/bridge.py --only async     # only the asynchronous-inference figures (bridge_async.json)

All DDS traffic stays on loopback (CYCLONEDDS_URI) on a private domain id. Processes:
  camera    `python -m robot_bridge.fake_sensors` (224x224 rgb8 at 30 Hz, joint states, EE pose)
  bridge    `vla-bridge` (python -m robot_bridge.cli.bridge) with the tiny CNN torch policy, 10 Hz, twist output
  observer  this process: subscribes to the images, the bridge's commands and its `/vla_bridge/action`
            (stamped with the observation each command answered; stamps are wall clock on one machine).
Figures:
- observation-to-command latency, p50/p99: action received here minus the stamp of the newest image in
  that observation (so it includes the wait for the next control tick); target p99 < one period (100 ms).
  The transport's share: image one-way + command one-way latency (p50) over the obs-to-command p50.
- images at 30 Hz between processes: lost = sent - received (target 0); per-image serialization of a
  224x224x3 Image (target < 0.5 ms), baseline: cyclonedds' element-wise uint8 encoder in the same run.
- fuzzing: 10,000 adversarial policy outputs through the node; commands beyond a limit (target 0 of
  10,000); baseline: how many raw outputs exceed the limits.
- periods with a command: every period that stopped instead (policy slow, stale camera under load) is
  counted by its status reason, so the latency figures are not survivors only.
- stale-sensor stop: the camera process is SIGKILLed; time from its last image stamp to the first
  zero-velocity command received here, in control periods (target <= 2), worst of several trials.
bridge_async.json (`inference=async`): the tiny VLA predicting chunks of 8 (random weights, 1 torch thread)
in the bridge process, 10 Hz, the camera process at 30 Hz 224 px with a moving scene (every frame shifted,
the joints moving: with random weights, successive chunks then disagree, so seams are exercised), for
--async-steps periods counted from 10 periods after the policy was first asked. From the bridge's per-period status on /diagnostics (stamped when published):
- missed control periods (target 0 of 1,000): periods that stopped instead of commanding the policy's
  action, plus periods skipped because a period overran (a gap between two status stamps of k periods
  holds k - 1 periods without a command). Baseline: the same policy with `inference=sync`, per 1,000.
  A process that only sleeps (10 ms at a time) runs alongside: skipped periods in a gap during which it
  also woke >= 50 ms late are counted as `skipped_in_machine_stalls` (the shared CPU stalled, not the node).
- velocity jump at a chunk seam, before the safety filter (target: within the filter's per-period limit on
  the change of the commanded velocity, max_linear_acceleration * dt = 0.25 m/s at 10 Hz, and likewise for
  rotation): the change of the planned step from the last action executed to the first after the seam,
  divided by dt. Baseline: the same seams switched without the cross-fade. Also recorded: the change of the
  commanded (post-filter) velocity at seam periods, and how often the filter had to clip at a seam.
- the same with the policy answering --slow-ms (250) later, longer than a period (a bigger model, or one on a
  remote GPU; waiting, not computing): missed periods with async, baseline sync, and the seams.
  `--stress N` adds N busy-looping processes for the whole measurement (load like the other jobs' on a busy
  day); results then go to bridge_async_stress<N>.json.
The machine is shared with other jobs (load is recorded), so absolute numbers are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bridge_processes import (  # noqa: E402  (also keeps DDS on loopback, and puts the repository on sys.path)
    PERIOD, ROOT, Observer, StallProbe, camera, measure_latency, pct, start_bridge, stop_process, wait_until)

from robot_bridge import msgs  # noqa: E402
from robot_bridge.config import BridgeConfig  # noqa: E402
from robot_bridge.safety import SafetyConfig  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bridge.json"
RESULTS_ASYNC = ROOT / "bench" / "results" / "bridge_async.json"
MOVED = ("running", "clipped")
WARMUP = 10  # periods after the policy is first asked that are not counted (async: the first chunk)


def serialization_ms() -> tuple[float, float, float]:
    """Per-image encode time (ms): median and mean of our raw-bytes path, and the median of cyclonedds'
    element-wise uint8 encoder (the baseline). Medians: on a loaded machine preemptions inflate means."""
    from cyclonedds.idl._machinery import PlainCdrV2SequenceOfPrimitiveMachine
    from cyclonedds.idl._support import Buffer
    from cyclonedds.idl.types import uint8

    img = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    msg = msgs.image_from_array(img, 1.0, "cam")
    for _ in range(5):
        msgs.serialize(msg)
    ours = []
    for _ in range(300):
        t0 = time.perf_counter()
        msgs.serialize(msg)
        ours.append((time.perf_counter() - t0) * 1e3)
    elementwise, buf, data = PlainCdrV2SequenceOfPrimitiveMachine(uint8), Buffer(), list(msg.data)
    base = []
    for _ in range(10):
        buf.seek(0)
        t0 = time.perf_counter()
        elementwise.serialize(buf, data)
        base.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ours)), float(np.mean(ours)), float(np.median(base))


def fuzz_through_node(n: int = 10_000) -> tuple[int, int, int]:
    """(commands beyond a limit, raw outputs beyond a limit, commands sent) for n fuzzed policy outputs."""
    from robot_bridge.config import NodeConfig
    from tests.bridge_fuzz import fuzz_actions  # the safety tests' adversarial outputs (ROOT is on sys.path)
    from robot_bridge.node import BridgeNode
    from robot_bridge.safety import SafetyFilter
    from robot_bridge.transport.base import Transport
    from vla.core.types import Policy

    class Memory(Transport):
        def __init__(self):
            self.subs, self.last = {}, {}

        def publisher(self, topic, t, q):
            def pub(m):
                self.last[topic] = m
                for cb in self.subs.get(topic, []):
                    cb(m)
            return pub

        def subscribe(self, topic, t, q, cb):
            self.subs.setdefault(topic, []).append(cb)

    actions = fuzz_actions(n, seed=7)

    class Fuzz(Policy):
        it = iter(actions)

        def act(self, obs):
            return next(self.it)

    clock = [0.0]
    cfg = BridgeConfig()
    cfg.node = NodeConfig(instruction="go", policy_timeout_periods=50)
    t = Memory()
    node = BridgeNode(cfg, Fuzz(), t, clock=lambda: clock[0])
    ref = SafetyFilter(cfg.safety, node.period)
    raw_exceed = sum(bool(ref.violation(np.asarray(a, np.float64))) for a in actions)
    img = np.zeros((8, 8, 3), np.uint8)
    p, prev, exceed, sent = np.array([0.45, 0.0, 0.3]), np.zeros(6), 0, 0
    for _ in range(n):
        clock[0] += node.period
        for topic, m in ((cfg.topics.cameras["primary"], msgs.image_from_array(img, clock[0])),
                         (cfg.topics.joint_states, msgs.JointState(position=[0.0])),
                         (cfg.topics.ee_pose, msgs.PoseStamped(pose=msgs.Pose(position=msgs.Point(*p))))):
            for cb in t.subs.get(topic, []):
                cb(m)
        r = node.tick()
        tw = t.last[cfg.topics.twist].twist
        v = np.array([tw.linear.x, tw.linear.y, tw.linear.z, tw.angular.x, tw.angular.y, tw.angular.z]) * node.period
        sent += 1
        if r.moved:
            g = t.last[cfg.topics.gripper].data[0]
            if node.safety.violation(np.append(v, g), None if "workspace" in r.notes else prev, ee_position=p):
                exceed += 1
            prev, p = v, p + v[:3]
        else:
            exceed += int(np.any(v != 0))
            prev = np.zeros(6)
    return exceed, raw_exceed, sent


def run_periods(obs: "Observer", inference: str, periods: int, startup_s: float = 180.0, latency_ms: float = 0) -> list:
    """vla-bridge with the chunked tiny VLA (`inference`; `latency_ms` added to every call), the camera process;
    the status of `periods` periods, counted from WARMUP periods after the policy was first asked (the first
    period that moved or said "policy slow"): [(stamp, reason, values)] in tick order."""
    extra = [f"+policy.kwargs.latency_ms={latency_ms}"] if latency_ms else []
    bridge = start_bridge(["policy.kind=tiny_vla", "+policy.kwargs.action_chunk=8", "policy.torch_threads=1", *extra],
                          [f"bridge.node.inference={inference}"])
    cam = camera(periods * PERIOD + startup_s + 60, 30.0, "--moving")  # each chunk sees another scene
    obs.statuses = []
    try:
        asked = lambda r: r in MOVED or r == "policy slow"  # noqa: E731
        if not wait_until(lambda: any(asked(r) for _, r, _ in obs.statuses), startup_s):
            raise RuntimeError(f"the bridge ({inference}) never asked the policy within {startup_s} s: {obs.reasons}")
        first = next(i for i, (_, r, _) in enumerate(obs.statuses) if asked(r)) + WARMUP
        if not wait_until(lambda: len(obs.statuses) >= first + periods, periods * PERIOD * 3 + 60):
            raise RuntimeError(f"only {len(obs.statuses) - first} of {periods} periods reported")
        out = obs.statuses[first:first + periods]
    finally:
        obs.statuses = None
        stop_process(bridge)
        cam.kill()
    return sorted(out, key=lambda s: int(s[2]["tick"]))


def missed_periods(statuses: list, probe: StallProbe | None = None) -> dict:
    """Periods without the policy's command: stops, and periods skipped by overruns (status stamp gaps); with
    `probe`, how many of the skipped periods fell in a gap during which an idle process on the same machine
    also woke >= 50 ms late (the shared CPU stalled, not the node)."""
    stops = [r for _, r, _ in statuses if r not in MOVED]
    stamps = np.array([s for s, _, _ in statuses])
    gaps = np.diff(stamps) / PERIOD
    skipped = int(np.sum(np.maximum(0, np.round(gaps) - 1)))
    ticks = np.array([int(v["tick"]) for _, _, v in statuses])
    unreported = int(np.sum(np.diff(ticks) - 1))  # status messages that never arrived (should be 0: RELIABLE)
    reasons: dict[str, int] = {}
    for r in stops:
        reasons[r] = reasons.get(r, 0) + 1
    stop_messages = [f"tick {v['tick']}: {v['message']}" for _, r, v in statuses if r not in MOVED][:10]
    machine_stalls = {}
    if probe is not None:
        stalled = [(i, probe.overlapping(stamps[i], stamps[i + 1])) for i, g in enumerate(gaps) if round(g) > 1]
        machine_stalls = {"skipped_in_machine_stalls": int(sum(round(gaps[i]) - 1 for i, late in stalled if late)),
                          "longest_machine_stall_ms": 1e3 * max((late for _, late in stalled), default=0.0)}
    return {"periods": len(statuses), "wall_periods": int(round((stamps[-1] - stamps[0]) / PERIOD)) + 1,
            "stopped": len(stops), "skipped_by_overrun": skipped,
            "unreported": unreported, "missed": len(stops) + skipped + unreported, "stop_reasons": reasons,
            "stop_messages": stop_messages,
            "overruns": [f"tick {statuses[i + 1][2]['tick']}: {g * PERIOD * 1e3:.0f} ms after the previous"
                         for i, g in enumerate(gaps) if round(g) > 1][:10],
            "period_ms_p50": float(np.median(gaps) * PERIOD * 1e3), "period_ms_p99": pct(gaps * PERIOD * 1e3, 99),
            "period_ms_max": float(gaps.max() * PERIOD * 1e3), **machine_stalls}


def seam_jumps(statuses: list) -> dict:
    """Velocity jumps at chunk seams (before the filter, from the node's `seam` status values) and the
    change of the commanded velocity at those periods (after it)."""
    seams, cmd_jumps, clipped, accel = [], [], 0, 0
    prev_cmd = None
    for _, reason, v in statuses:
        cmd = np.array([float(x) for x in v["command"].split()]) if "command" in v else None
        if "seam" in v:
            f = dict(kv.split("=") for kv in v["seam"].split())
            if int(f["used"]):
                seams.append([float(x) for x in f["jump"].split(",")] + [float(x) for x in f["naive"].split(",")]
                             + [int(f["stale"])])
                if cmd is not None and prev_cmd is not None:
                    d = cmd[:6] - prev_cmd[:6]
                    cmd_jumps.append([np.linalg.norm(d[:3]), np.linalg.norm(d[3:6])])
                clipped += int(reason == "clipped")
                accel += int("acceleration" in v["message"])
        prev_cmd = cmd
    s = np.array(seams).reshape(-1, 5)
    c = np.array(cmd_jumps).reshape(-1, 2)
    return {"seams": len(s), "stale_actions_per_seam": {str(k): int(np.sum(s[:, 4] == k)) for k in sorted(set(s[:, 4].astype(int)))},
            "jump_m_s_max": float(s[:, 0].max() / PERIOD) if len(s) else 0.0,
            "jump_rad_s_max": float(s[:, 1].max() / PERIOD) if len(s) else 0.0,
            "naive_jump_m_s_max": float(s[:, 2].max() / PERIOD) if len(s) else 0.0,
            "naive_jump_rad_s_max": float(s[:, 3].max() / PERIOD) if len(s) else 0.0,
            "commanded_jump_m_s_max": float(c[:, 0].max() / PERIOD) if len(c) else 0.0,
            "commanded_jump_rad_s_max": float(c[:, 1].max() / PERIOD) if len(c) else 0.0,
            "seam_periods_clipped_by_the_filter": clipped, "seam_periods_clipped_for_acceleration": accel}


def inference_ms(statuses: list) -> dict:
    ms = [float(v["policy_ms"]) for _, _, v in statuses if float(v.get("policy_ms", 0)) > 0]
    return {"n": len(ms), "p50": pct(ms, 50), "p99": pct(ms, 99), "max": max(ms) if ms else float("nan")}


def machine(load_start: tuple, stress: int = 0) -> dict:
    """The machine and its load (other jobs share its 2 cores): recorded with every result."""
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(), "stress_processes": stress}


def command_line() -> str:
    return " ".join([Path(sys.executable).name, *sys.argv])


def measure_async(obs: "Observer", periods: int, sync_periods: int, stress: int, slow_ms: float,
                  slow_periods: int) -> dict:
    """The statuses of each run (async, the sync baseline, both with the slow policy), under `stress` busy
    loops, with the machine's load."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(stress)]
    probe = StallProbe()
    try:
        time.sleep(2.0 if stress else 0.0)
        load0, t0 = os.getloadavg(), time.time()
        runs = {"async": run_periods(obs, "async", periods), "sync": run_periods(obs, "sync", sync_periods)}
        if slow_periods:
            runs.update({f"slow_{mode}": run_periods(obs, mode, slow_periods, latency_ms=slow_ms) for mode in ("async", "sync")})
        return {"runs": runs, "machine": machine(load0, stress), "t0": t0, "probe": probe}
    finally:
        probe.close()
        for b in burners:
            b.kill()
            b.wait()


def async_targets(res: dict, periods: int, slow_ms: float) -> list[dict]:
    missed, jumps, base = res["async"], res["async"]["seams"], res["sync_baseline"]
    lin, ang = res["limits"]["velocity_change_per_period_m_s"], res["limits"]["velocity_change_per_period_rad_s"]
    per_1000 = base["missed"] * 1000 / max(1, base["periods"])
    targets = [
        {"name": f"missed control periods over {missed['periods']} (tiny VLA, chunks of 8, async, this CPU)",
         "value": missed["missed"], "baseline": round(per_1000, 1), "target": "0",
         "met": missed["missed"] == 0 and missed["periods"] >= periods},
        {"name": "largest velocity jump at a chunk seam before the filter (m/s)", "value": jumps["jump_m_s_max"],
         "baseline": jumps["naive_jump_m_s_max"], "target": f"<= {lin:g} m/s (max_linear_acceleration * dt)",
         "met": jumps["seams"] > 0 and jumps["jump_m_s_max"] <= lin + 1e-6},
        {"name": "largest angular velocity jump at a chunk seam before the filter (rad/s)",
         "value": jumps["jump_rad_s_max"], "baseline": jumps["naive_jump_rad_s_max"],
         "target": f"<= {ang:g} rad/s (max_angular_acceleration * dt)",
         "met": jumps["seams"] > 0 and jumps["jump_rad_s_max"] <= ang + 1e-6},
    ]
    if "async" in res["slow_policy"]:
        a, s = res["slow_policy"]["async"], res["slow_policy"]["sync"]
        targets.append({
            "name": f"missed control periods over {a['periods']}, policy {slow_ms:g} ms slower (async)",
            "value": a["missed"], "baseline": round(s["missed"] * a["periods"] / max(1, s["periods"]), 1),
            "target": "0", "met": a["missed"] == 0})
        targets.append({
            "name": f"largest velocity jump at a chunk seam, policy {slow_ms:g} ms slower (m/s)",
            "value": a["seams"]["jump_m_s_max"], "baseline": a["seams"]["naive_jump_m_s_max"],
            "target": f"<= {lin:g} m/s", "met": a["seams"]["seams"] > 0 and a["seams"]["jump_m_s_max"] <= lin + 1e-6})
    return targets


def bench_async(obs: "Observer", periods: int, sync_periods: int, stress: int = 0, slow_ms: float = 250.0,
                slow_periods: int = 300) -> dict:
    """bridge_async.json: missed periods and seam jumps with inference=async (see the module docstring)."""
    m = measure_async(obs, periods, sync_periods, stress, slow_ms, slow_periods)
    runs, probe = m["runs"], m["probe"]
    limits = SafetyConfig()
    res = {"command": command_line(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(m["t0"])),
           "seconds": round(time.time() - m["t0"], 1), "machine": m["machine"],
           "setup": ("vla-bridge with the tiny VLA preset predicting chunks of 8 (parallel decoding, random weights, "
                     "1 torch thread), bridge.node.inference=async, seam_steps=3, 10 Hz, twist output; camera process "
                     "224x224 at 30 Hz with a moving scene (fake_sensors --moving); direct DDS on loopback; periods counted from 10 periods after the policy was first asked"),
           "async": {**missed_periods(runs["async"], probe), "inference_ms": inference_ms(runs["async"]),
                     "seams": seam_jumps(runs["async"])},
           "sync_baseline": {**missed_periods(runs["sync"], probe), "inference_ms": inference_ms(runs["sync"])},
           "slow_policy": {"latency_ms_added": slow_ms, "note": (
               "the same policy answering latency_ms later (a bigger model, or one on a remote GPU): inference "
               "longer than a period"),
               **{mode: {**missed_periods(runs[f"slow_{mode}"], probe), "inference_ms": inference_ms(runs[f"slow_{mode}"]),
                         **({"seams": seam_jumps(runs[f"slow_{mode}"])} if mode == "async" else {})}
                  for mode in ("async", "sync") if f"slow_{mode}" in runs}},
           "limits": {"velocity_change_per_period_m_s": limits.max_linear_acceleration * PERIOD,  # m/s per period
                      "velocity_change_per_period_rad_s": limits.max_angular_acceleration * PERIOD}}
    res["targets"] = async_targets(res, periods, slow_ms)
    return res


def print_table(title: str, targets: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("target", "value", "baseline", "goal", "met"):
        table.add_column(col)
    for t in targets:
        fmt = (lambda x: f"{x:.3g}" if isinstance(x, float) else str(x))
        table.add_row(t["name"], fmt(t["value"]), fmt(t["baseline"]), t["target"], "yes" if t["met"] else "[red]NO[/red]")
    Console().print(table)




class SyncBench:
    """bridge.json: the image stream, the bridge's latency and stale-sensor stop across processes, fuzzing through
    the node, and (--tiny-vla) the tiny VLA behind the bridge synchronously. One method per figure, then
    `targets`; `run` does them in order (the bridge process is up only for the latency and stale-stop parts)."""

    def __init__(self, args: argparse.Namespace, obs: Observer):
        self.args, self.obs = args, obs
        self.load0 = os.getloadavg()
        self.results: dict = {"command": command_line(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                          "loadavg_start": self.load0},
                              "note": "measured on a shared 2-core machine under load from other jobs; DDS on loopback"}

    def image_stream(self) -> None:
        """Images at 30 Hz between processes (no bridge running: only the stream), and their serialization."""
        obs, seconds = self.obs, self.args.stream_seconds
        time.sleep(0.5)  # the async part's camera and bridge are gone: what they sent does not count here
        for received in (obs.images, obs.actions, obs.twists):
            received.clear()
        cam = camera(seconds)
        sent = json.loads(cam.communicate(timeout=seconds + 60)[0])["sent"]
        time.sleep(0.3)
        got = len(obs.images)
        one_way = [(r - s) * 1e3 for s, r in obs.images]
        self.results["image_stream"] = {"sent": sent, "received": got, "lost": sent - got, "hz": 30,
                                        "one_way_ms_p50": pct(one_way, 50), "one_way_ms_p99": pct(one_way, 99)}
        ser, ser_mean, ser_base = serialization_ms()
        self.results["serialization_ms"] = {"ours_median": ser, "ours_mean": ser_mean, "elementwise_baseline_median": ser_base}

    def latency_and_stale_stop(self) -> None:
        """vla-bridge (tiny CNN) + camera: observation-to-command latency, then the stale-sensor stop trials."""
        bridge = start_bridge(["policy.kind=tiny_cnn", "policy.torch_threads=1"])
        cams = [camera(self.args.latency_seconds + 30)]
        try:
            self.results["latency"] = {"policy": "tiny_cnn (small untrained torch CNN, in the bridge process, 1 torch thread)",
                                       **measure_latency(self.obs, self.args.latency_seconds, startup_s=60)}
            trials = []
            for i in range(self.args.stale_trials):
                if i:
                    cams.append(camera(60))
                trials.append(self._stale_stop_trial(i, cams[-1]))
            self.results["stale_stop_periods"] = {"trials": trials, "worst": max(trials), "period_s": PERIOD}
        finally:
            stop_process(bridge)
            for cam in cams:
                if cam.poll() is None:
                    cam.kill()

    def _stale_stop_trial(self, i: int, cam: subprocess.Popen) -> float:
        """SIGKILL the camera once the arm moves; periods from its last image stamp to the first zero twist."""
        twists, t_start = self.obs.twists, time.time()
        if not wait_until(lambda: any(r > t_start + 0.3 and not z for _, r, z in twists), 30):
            raise RuntimeError("no motion after restarting the camera")
        time.sleep(0.2 + 0.037 * i)  # vary the phase of the kill against the control tick
        os.kill(cam.pid, signal.SIGKILL)
        t_kill = time.time()
        cam.wait()
        if not wait_until(lambda: any(r > t_kill and z for _, r, z in twists), 10):
            raise RuntimeError("the bridge did not stop after the camera died")
        last_img = max(s for s, _ in self.obs.images if s <= t_kill)
        t_stop = min(r for _, r, z in twists if r > t_kill and z)
        return (t_stop - last_img) / PERIOD

    def fuzz(self) -> None:
        """Fuzzing through the node (in-process: the safety path is transport-independent)."""
        exceed, raw_exceed, n_fuzz = fuzz_through_node()
        self.results["fuzz"] = {"outputs": n_fuzz, "commands_beyond_limits": exceed, "raw_outputs_beyond_limits": raw_exceed}

    def tiny_vla(self) -> None:
        """The project's tiny VLA (random weights) behind the same bridge, synchronously, and its act() here."""
        bridge = start_bridge(["policy.kind=tiny_vla", "policy.torch_threads=1"])
        cam = camera(self.args.latency_seconds + 180)
        try:
            self.results["latency_tiny_vla"] = {"policy": "tiny_vla (vla.model tiny preset, random weights, 1 torch thread)",
                                                **measure_latency(self.obs, self.args.latency_seconds, startup_s=180)}
        finally:
            stop_process(bridge)
            cam.kill()
        from vla.core.types import Observation
        from vla.policy.builtins import tiny_vla_policy

        pol = tiny_vla_policy()
        o = Observation(images={c: np.zeros((224, 224, 3), np.uint8) for c in pol.cameras},
                        proprio=np.zeros(8, np.float32), instruction="pick up the cube")
        pol.act(o)
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            pol.act(o)
            ts.append((time.perf_counter() - t0) * 1e3)
        self.results["tiny_vla_act_ms_in_process"] = {"p50": pct(ts, 50), "max": max(ts), "n": len(ts)}

    def targets(self) -> list[dict]:
        r = self.results
        lat, ser = r["latency"], r["serialization_ms"]
        targets = [
            {"name": "obs_to_command_p99_ms (tiny CNN policy, across processes)", "value": lat["obs_to_command_ms_p99"],
             "baseline": PERIOD * 1e3, "target": "< 100 ms (one period at 10 Hz)", "met": lat["obs_to_command_ms_p99"] < 100},
            {"name": "transport_share_of_obs_to_command_p50", "value": lat["transport_share_p50"],
             "baseline": lat["obs_to_command_ms_p50"], "target": "recorded", "met": True},
            {"name": "images_lost_224px_30hz", "value": r["image_stream"]["lost"],
             "baseline": r["image_stream"]["sent"], "target": "0", "met": r["image_stream"]["lost"] == 0},
            {"name": "image_serialization_ms (median of 300)", "value": ser["ours_median"],
             "baseline": ser["elementwise_baseline_median"], "target": "< 0.5 ms", "met": ser["ours_median"] < 0.5},
            {"name": "fuzzed_commands_beyond_limits", "value": r["fuzz"]["commands_beyond_limits"],
             "baseline": r["fuzz"]["raw_outputs_beyond_limits"], "target": "0 of 10000",
             "met": r["fuzz"]["commands_beyond_limits"] == 0},
            {"name": "stale_sensor_stop_periods_worst", "value": r["stale_stop_periods"]["worst"],
             "baseline": 1.0, "target": "<= 2 periods", "met": r["stale_stop_periods"]["worst"] <= 2.0},
        ]
        if "latency_tiny_vla" in r:
            v = r["latency_tiny_vla"]
            targets.append({
                "name": "obs_to_command_p99_ms (tiny VLA on this CPU, across processes)", "value": v["obs_to_command_ms_p99"],
                "baseline": PERIOD * 1e3, "target": "< 100 ms (one period at 10 Hz)",
                "met": bool(v["n"] and v["obs_to_command_ms_p99"] < 100 and v["periods_with_a_command"] == v["periods"])})
        return targets

    def run(self) -> dict:
        self.image_stream()
        self.latency_and_stale_stop()
        self.fuzz()
        if self.args.tiny_vla:
            self.tiny_vla()
        self.results["targets"] = self.targets()
        self.results["machine"]["loadavg_end"] = os.getloadavg()
        return self.results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--stream-seconds", type=float, default=10.0)
    ap.add_argument("--stale-trials", type=int, default=5)
    ap.add_argument("--tiny-vla", action="store_true")
    ap.add_argument("--async-steps", type=int, default=1000, help="periods measured with inference=async")
    ap.add_argument("--sync-steps", type=int, default=300, help="periods of the inference=sync baseline")
    ap.add_argument("--only", choices=["async"], help="run only this part (its own results file)")
    ap.add_argument("--stress", type=int, default=0, help="busy-looping processes during the async part")
    ap.add_argument("--slow-ms", type=float, default=250.0, help="latency added to the policy in the slow-policy run")
    ap.add_argument("--slow-steps", type=int, default=300, help="periods of each slow-policy run (0: skip it)")
    return ap.parse_args(argv)


def main() -> None:
    args = parse_args()
    obs = Observer(BridgeConfig())
    try:
        res_async = bench_async(obs, args.async_steps, args.sync_steps, args.stress, args.slow_ms, args.slow_steps)
        out = RESULTS_ASYNC.with_name(f"bridge_async_stress{args.stress}.json") if args.stress else RESULTS_ASYNC
        out.write_text(json.dumps(res_async, indent=2))
        print_table(f"bridge, asynchronous inference (loadavg {res_async['machine']['loadavg_start'][0]:.1f} at start)",
                    res_async["targets"])
        print(f"wrote {out}")
        if args.only == "async":
            return
        results = SyncBench(args, obs).run()
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2))
        print_table(f"bridge benchmark (loadavg {results['machine']['loadavg_start'][0]:.1f} at start; shared machine)",
                    results["targets"])
        print(f"wrote {RESULTS}")
    finally:
        obs.t.close()


if __name__ == "__main__":
    main()
