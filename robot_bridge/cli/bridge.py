"""`vla-bridge`: run a policy on an arm through ROS 2, serve a policy, or drive the simulated arm.

    vla-bridge policy.kind=vla policy.path=outputs/train/final               # node, MoveIt Servo twist, DDS
    vla-bridge bridge=ros2_control policy.kind=remote policy.host=gpu-box     # velocity controller, remote policy
    vla-bridge role=policy_server policy.kind=vla policy.path=... server.host=0.0.0.0   # on the GPU machine
    vla-bridge bridge=sim policy.kind=vla policy.path=... sim.seeds=[1000000,1000001]   # sim in the loop
    vla-bridge record.enabled=true                                            # also record a rosbag2 (mcap)
    vla-bridge transport=rclpy ...                                            # a ROS 2 node (ROS 2 or .venv-ros)
    vla-bridge --cfg job                                                      # print the resolved config

Presets: configs/bridge/*.yaml (servo, ros2_control, sim). Schema: robot_bridge/app.py (BridgeAppConfig).
Logic: robot_bridge.node (rate loop, safety, watchdog, e-stop), robot_bridge.app (roles).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from robot_bridge.app import BridgeAppConfig
from vla.cli.hydra_app import ConfigHint, default_headless_gl

logger = logging.getLogger("robot_bridge.cli.bridge")


def register_configs() -> None:
    ConfigStore.instance().store(name="bridge_schema", node=BridgeAppConfig)


_hint = ConfigHint("vla-bridge", "bridge")


@hydra.main(version_base=None, config_path="pkg://configs", config_name="bridge")
@_hint.task
def _app(dcfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from omegaconf.errors import OmegaConfBaseException

    from robot_bridge.app import run

    logger.info("config:\n%s", OmegaConf.to_yaml(dcfg))
    try:
        cfg: BridgeAppConfig = OmegaConf.to_object(dcfg)  # runs every __post_init__ check
        result = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except (ValueError, FileNotFoundError, FileExistsError, ImportError, RuntimeError, OmegaConfBaseException) as e:
        logger.error("%s", e)
        sys.exit(2)
    if cfg.role == "sim_in_loop" and result:
        _print_summary(result)
    elif result:
        logger.info("%s", json.dumps(result, default=str))


def _print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sim in the loop: {s['env_id']} ({s['policy']} policy, {s['rate_hz']:g} Hz, DDS)")
    for col in ("seed", "success", "steps", "end"):
        table.add_column(col)
    for e in s["episodes"]:
        table.add_row(str(e["seed"]), str(e["success"]), str(e["steps"]), e["end"])
    Console(stderr=True).print(table)
    lat = s.get("obs_to_command_ms") or {}
    Console(stderr=True).print(f"success rate {s['success_rate']:.2f} (95% CI {s['success_ci95'][0]:.2f}-"
                               f"{s['success_ci95'][1]:.2f}); observation-to-command p50 {lat.get('p50', float('nan')):.1f} ms, "
                               f"p99 {lat.get('p99', float('nan')):.1f} ms")


def main() -> None:
    default_headless_gl()  # the simulated arm (roles sim_arm, sim_in_loop) renders MuJoCo; its child inherits this
    register_configs()
    _hint.run(_app)


if __name__ == "__main__":
    main()
