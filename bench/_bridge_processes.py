"""The processes of the bridge benchmark (bench/bridge.py): the camera, `vla-bridge`, and this process observing
the topics between them. All DDS traffic stays on loopback on a private domain id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_bridge.transport.loopback import use_loopback  # noqa: E402

use_loopback()  # before the first participant, and inherited by the processes started here

from robot_bridge import msgs  # noqa: E402
from robot_bridge.config import BridgeConfig  # noqa: E402
from robot_bridge.transport.base import RELIABLE, SENSOR  # noqa: E402
from robot_bridge.transport.dds import DdsTransport  # noqa: E402

DOMAIN = 210 + os.getpid() % 20  # private DDS domain (210-229), apart from the tests
RATE_HZ = 10.0
PERIOD = 1.0 / RATE_HZ


def pct(x, q) -> float:
    return float(np.percentile(np.asarray(x), q)) if len(x) else float("nan")


class Observer:
    def __init__(self, cfg: BridgeConfig):
        self.t = DdsTransport(DOMAIN)
        self.images: list[tuple[float, float]] = []  # (stamp, received)
        self.actions: list[tuple[float, float]] = []
        self.twists: list[tuple[float, float, bool]] = []  # (stamp, received, zero)
        self.t.subscribe(cfg.topics.cameras["primary"], msgs.Image, SENSOR,
                         lambda m: self.images.append((msgs.from_time(m.header.stamp), time.time())))
        self.t.subscribe(cfg.topics.action, msgs.JointState, RELIABLE,
                         lambda m: self.actions.append((msgs.from_time(m.header.stamp), time.time())))
        self.t.subscribe(cfg.topics.twist, msgs.TwistStamped, RELIABLE, self._twist)
        self.reasons: dict[str, int] = {}
        self.statuses: list[tuple[float, str, dict[str, str]]] | None = None  # (stamp, reason, values) when on
        self.t.subscribe(cfg.topics.status, msgs.DiagnosticArray, RELIABLE, self._status)

    def _status(self, m):
        st = m.status[0]
        why = st.message.split(":")[0]
        self.reasons[why] = self.reasons.get(why, 0) + 1
        if self.statuses is not None:
            self.statuses.append((msgs.from_time(m.header.stamp), why,
                                  {"message": st.message, **{kv.key: kv.value for kv in st.values}}))

    def _twist(self, m):
        tw = m.twist
        zero = not any((tw.linear.x, tw.linear.y, tw.linear.z, tw.angular.x, tw.angular.y, tw.angular.z))
        self.twists.append((msgs.from_time(m.header.stamp), time.time(), zero))


def camera(seconds: float, hz: float = 30.0, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "robot_bridge.fake_sensors", "--domain", str(DOMAIN), "--hz", str(hz),
                             "--size", "224", "--seconds", str(seconds), *extra], stdout=subprocess.PIPE, text=True)


def wait_until(pred, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.005)
    return False


def start_bridge(policy_args: list[str], extra: list[str] = ()) -> subprocess.Popen:
    """`vla-bridge` in its own process: 10 Hz, twist output, loopback DDS on the private domain."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_bridge_"))
    return subprocess.Popen(
        [sys.executable, "-m", "robot_bridge.cli.bridge", "loopback=true", f"domain_id={DOMAIN}", *policy_args,
         "bridge.node.instruction=pick up the cube", f"bridge.node.rate_hz={RATE_HZ}", f"hydra.run.dir={tmp}",
         "bridge.output.frame_id=base_link", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_process(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGINT)  # the bridge sends a stop command on the way out
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:  # a bug (tests/test_bridge_cli.py checks it never happens): say so
        print("warning: vla-bridge still running 15 s after SIGINT; killed", file=sys.stderr)
        p.kill()


def measure_latency(obs: "Observer", seconds: float, startup_s: float) -> dict:
    """Wait for the first commands, then measure for `seconds`: latency, transport share, status reasons."""
    obs.reasons.clear()  # statuses of an earlier bridge process must not count as this one being up
    if not wait_until(lambda: len(obs.reasons) > 0 and sum(obs.reasons.values()) > 5, startup_s):
        raise RuntimeError(f"the bridge process reported no status within {startup_s} s")
    time.sleep(1.0)
    obs.actions.clear()
    obs.images.clear()
    n_tw0 = len(obs.twists)
    obs.reasons.clear()
    time.sleep(seconds)
    reasons = dict(obs.reasons)
    lat = [(r - s) * 1e3 for s, r in obs.actions]
    img_ms = [(r - s) * 1e3 for s, r in obs.images]
    cmd_ms = [(r - s) * 1e3 for s, r, _ in obs.twists[n_tw0:]]
    return {"periods": sum(reasons.values()),
            "periods_with_a_command": reasons.get("running", 0) + reasons.get("clipped", 0),
            "obs_to_command_ms_p50": pct(lat, 50), "obs_to_command_ms_p99": pct(lat, 99), "n": len(lat),
            "image_one_way_ms_p50": pct(img_ms, 50), "command_one_way_ms_p50": pct(cmd_ms, 50),
            "transport_share_p50": (pct(img_ms, 50) + pct(cmd_ms, 50)) / pct(lat, 50) if lat else float("nan"),
            "status_reasons": reasons}


#: sleeps 10 ms at a time and prints each wake-up at least 50 ms late: [wall time, seconds late]
_PROBE = ("import json, time\nwhile True:\n    t = time.monotonic()\n    time.sleep(0.01)\n"
          "    late = time.monotonic() - t - 0.01\n    if late > 0.05:\n"
          "        print(json.dumps([time.time(), late]), flush=True)\n")


class StallProbe:
    """A process of its own that only sleeps: when it wakes late, the machine stalled (no core for anyone),
    not the bridge. Lets the benchmark tell periods lost to the node from periods lost to the shared CPU."""

    def __init__(self):
        self.stalls: list[tuple[float, float]] = []  # (wake-up wall time, seconds late)
        self._p = subprocess.Popen([sys.executable, "-c", _PROBE], stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._p.stdout:
            w, late = json.loads(line)
            self.stalls.append((w, late))

    def overlapping(self, t0: float, t1: float) -> float:
        """The longest stall (s) overlapping the wall-time interval [t0, t1] (0 if none)."""
        return max((late for w, late in self.stalls if w - late - 0.01 < t1 and w > t0), default=0.0)

    def close(self) -> None:
        self._p.kill()
        self._p.wait()
