"""What `vla-bridge` runs, by role: the node, a policy server, the simulated arm, or sim in the loop.

The schema (`BridgeAppConfig`) is the hydra config of `vla-bridge` (configs/bridge.yaml + configs/bridge/).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_bridge.config import BridgeConfig
from robot_bridge.policies import PolicyConfig, build_policy
from robot_bridge.signals import stop_on_signals
from robot_bridge.sim_arm import SimArmConfig
from robot_bridge.transport.factory import TRANSPORTS

logger = logging.getLogger(__name__)

ROLES = ("node", "policy_server", "sim_arm", "sim_in_loop")


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"  # 0.0.0.0 to serve other machines (the protocol has no authentication: use a trusted network or an SSH tunnel)
    port: int = 5555


@dataclass
class RecordConfig:
    enabled: bool = False
    path: str = ""  # "" = <output_dir>/bag
    storage: str = "mcap"  # mcap | sqlite3


@dataclass
class BridgeAppConfig:
    """Attributes:
        role: node (drive an arm), policy_server (serve `policy` over TCP), sim_arm (a simulated arm on the
            bridge's topics), sim_in_loop (sim arm in a child process + the node here; writes summary.json).
        transport: dds (cyclonedds, no ROS install needed) or rclpy (a sourced ROS 2, or .venv-ros: make ros-venv).
        domain_id: DDS domain (ROS_DOMAIN_ID).
        loopback: keep DDS traffic on 127.0.0.1 (CYCLONEDDS_URI, ROS_AUTOMATIC_DISCOVERY_RANGE; tests, sim in the loop).
        duration_s: stop after this long (0 = until Ctrl-C).
    """

    role: str = "node"
    transport: str = "dds"
    domain_id: int = 0
    loopback: bool = False
    duration_s: float = 0.0
    output_dir: str = "outputs/bridge"
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    sim: SimArmConfig = field(default_factory=SimArmConfig)
    record: RecordConfig = field(default_factory=RecordConfig)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role={self.role!r}; choose one of {ROLES}")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport={self.transport!r}; choose dds or rclpy")


def _transport(cfg: BridgeAppConfig, node_name: str = "vla_bridge", lifecycle: bool = False):
    """The transport of one process; `lifecycle` for the bridge node's own (a ROS 2 lifecycle node on rclpy)."""
    from robot_bridge.transport import make_transport

    if cfg.loopback:
        from robot_bridge.transport.loopback import use_loopback

        use_loopback()
    return make_transport(cfg.transport, domain_id=cfg.domain_id, node_name=node_name, lifecycle=lifecycle)


def _stop_after(seconds: float) -> threading.Event:
    """An event set after `seconds` (never when 0). The timer is a daemon: a run stopped earlier (Ctrl-C)
    must not wait for it to expire before the process can exit."""
    ev = threading.Event()
    if seconds > 0:
        timer = threading.Timer(seconds, ev.set)
        timer.daemon = True
        timer.start()
    return ev


def run_node(cfg: BridgeAppConfig, out_dir: Path) -> dict[str, Any]:
    from robot_bridge.node import BridgeNode
    from robot_bridge.recorder import Recorder

    policy = build_policy(cfg.policy)
    transport = _transport(cfg, lifecycle=True)
    rec = None
    if cfg.record.enabled:
        rec = Recorder(cfg.record.path or out_dir / "bag", transport, cfg.bridge.topics, storage=cfg.record.storage)
    node = BridgeNode(cfg.bridge, policy, transport)
    stop = _stop_after(cfg.duration_s)
    logger.info("bridge running (%s, %s command); Ctrl-C stops it with a zero-velocity command", cfg.transport,
                cfg.bridge.output.command)
    with stop_on_signals(stop):  # SIGINT/SIGTERM end the loop even when the process inherited SIGINT ignored
        try:
            node.run(stop)
        except KeyboardInterrupt:
            logger.info("interrupted")
        finally:
            stop.set()
            node.close()
            if rec is not None:
                rec.close()
            policy.close()
            transport.close()
    logger.info("bridge stopped after %d periods", node.ticks)
    return {"ticks": node.ticks, "last_reason": node.last_reason, "bag": str(rec.path) if rec else None}


def run_policy_server(cfg: BridgeAppConfig) -> None:
    from robot_bridge.policy_server import PolicyServer

    srv = PolicyServer(build_policy(cfg.policy), cfg.server.host, cfg.server.port)
    try:
        with stop_on_signals():
            srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()


def run_sim_arm(cfg: BridgeAppConfig, out_path: Path | None = None) -> list[dict[str, Any]]:
    from robot_bridge.sim_arm import SimArm

    transport = _transport(cfg, node_name="vla_sim_arm")
    try:
        with stop_on_signals():
            return SimArm(cfg.sim, cfg.bridge, transport).run(out_path)
    finally:
        transport.close()


def _sim_arm_child(cfg_dict: dict, out_path: str) -> None:
    """Entry of the spawned sim-arm process (rebuilds the typed config from a plain dict)."""
    from omegaconf import OmegaConf

    logging.basicConfig(level=logging.INFO, format="[sim_arm %(levelname)s] %(message)s")
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(BridgeAppConfig), cfg_dict))
    run_sim_arm(cfg, Path(out_path))


def run_sim_in_loop(cfg: BridgeAppConfig, out_dir: Path) -> dict[str, Any]:
    """Sim arm in a child process, the node (and policy) here, DDS in between; returns the summary."""
    from omegaconf import OmegaConf

    from robot_bridge import msgs
    from robot_bridge.node import BridgeNode
    from robot_bridge.recorder import Recorder
    from robot_bridge.transport.base import RELIABLE

    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.loopback:
        from robot_bridge.transport.loopback import use_loopback

        use_loopback()  # before the child starts, so it inherits it
    sim_out = out_dir / "sim_episodes.json"
    child = mp.get_context("spawn").Process(target=_sim_arm_child,
                                            args=(OmegaConf.to_container(OmegaConf.structured(cfg)), str(sim_out)))
    policy = build_policy(cfg.policy)
    transport = _transport(cfg, lifecycle=True)
    latencies: list[float] = []
    reasons: dict[str, int] = {}

    def on_status(m: msgs.DiagnosticArray) -> None:
        why = m.status[0].message.split(":")[0] if m.status else ""
        reasons[why] = reasons.get(why, 0) + 1

    transport.subscribe(cfg.bridge.topics.action, msgs.JointState, RELIABLE,
                        lambda m: latencies.append(time.time() - msgs.from_time(m.header.stamp)))
    transport.subscribe(cfg.bridge.topics.status, msgs.DiagnosticArray, RELIABLE, on_status)
    rec = Recorder(cfg.record.path or out_dir / "bag", transport, cfg.bridge.topics, storage=cfg.record.storage) if cfg.record.enabled else None
    node = BridgeNode(cfg.bridge, policy, transport)
    stop = threading.Event()
    loop = threading.Thread(target=node.run, args=(stop,), daemon=True)
    t0 = time.perf_counter()
    child.start()
    loop.start()
    try:
        with stop_on_signals():
            child.join(cfg.duration_s or None)
        if child.is_alive():
            logger.error("sim arm still running after %.0f s; stopping it", cfg.duration_s)
            child.terminate()
            child.join(5)
    finally:
        stop.set()
        loop.join(5)
        if child.is_alive():  # interrupted: the arm process must not outlive the run (its exit is joined at ours)
            child.terminate()
            child.join(5)
        node.close()
        if rec is not None:
            rec.close()
        policy.close()
        transport.close()
    if child.exitcode != 0 or not sim_out.is_file():
        raise RuntimeError(f"the simulated arm process failed (exit code {child.exitcode}); see its log above")
    summary = json.loads(sim_out.read_text())
    lat = np.asarray(latencies) * 1e3
    summary.update({
        "env_id": cfg.sim.env_id, "policy": cfg.policy.kind, "rate_hz": cfg.bridge.node.rate_hz,
        "obs_to_command_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                              "n": int(lat.size)} if lat.size else None,
        "wall_s": time.perf_counter() - t0, "transport": cfg.transport, "loopback": cfg.loopback,
        "status_reasons": reasons,  # what the bridge reported each period (running, or why it stopped)
    })
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def sim_in_loop_config(policy: PolicyConfig | dict, *, env_id: str | None = None, seeds: list[int] | None = None,
                       env_kwargs: dict | None = None, domain_id: int = 0, record_to: str = "",
                       **bridge_overrides: Any) -> BridgeAppConfig:
    """The `bridge=sim` preset (configs/bridge/sim.yaml) as a typed config, for callers outside hydra
    (e.g. the demo):

        cfg = sim_in_loop_config({"kind": "vla", "path": "outputs/train/final"}, seeds=[1000000, 1000001],
                                 env_kwargs={"dr_level": "none", "image_size": 224, "cameras": ["primary", "wrist"]})
        summary = run_sim_in_loop(cfg, Path("outputs/demo/bridge"))   # also writes summary.json there
    `bridge_overrides` are merged into `bridge` (e.g. node={"rate_hz": 5.0}).
    """
    from importlib import resources

    from omegaconf import OmegaConf

    preset = OmegaConf.create(resources.files("configs").joinpath("bridge", "sim.yaml").read_text())
    cfg = OmegaConf.merge(OmegaConf.structured(BridgeAppConfig), preset)
    cfg.domain_id = domain_id
    cfg.policy = OmegaConf.merge(OmegaConf.structured(PolicyConfig), OmegaConf.structured(policy) if isinstance(policy, PolicyConfig) else policy)
    if env_id is not None:
        cfg.sim.env_id = env_id
    if seeds is not None:
        cfg.sim.seeds = list(seeds)
    if env_kwargs is not None:
        cfg.sim.env_kwargs = env_kwargs
    if record_to:
        cfg.record.enabled, cfg.record.path = True, record_to
    if bridge_overrides:
        cfg.bridge = OmegaConf.merge(cfg.bridge, bridge_overrides)
    return OmegaConf.to_object(cfg)


def run(cfg: BridgeAppConfig, out_dir: Path) -> Any:
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.role == "node":
        return run_node(cfg, out_dir)
    if cfg.role == "policy_server":
        return run_policy_server(cfg)
    if cfg.role == "sim_arm":
        return run_sim_arm(cfg, out_dir / "sim_episodes.json")
    return run_sim_in_loop(cfg, out_dir)

