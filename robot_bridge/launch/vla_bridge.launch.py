"""ROS 2 launch file for the VLA bridge (untested under `ros2 launch`: no launch wheel exists; see docs/bridge.md).

    ros2 launch robot_bridge/launch/vla_bridge.launch.py params_file:=robot_bridge/params/vla_bridge.yaml
    ros2 launch robot_bridge/launch/vla_bridge.launch.py extra:="policy.kind=vla policy.path=/ckpt"

It runs `vla-bridge` (a hydra app) with the parameters file flattened into overrides
(`vla_bridge.ros__parameters.bridge.node.rate_hz: 10.0` -> `bridge.node.rate_hz=10.0`), plus `extra`.
`params_to_overrides` is plain Python, so the flattening is tested without ROS (tests/test_bridge_cli.py).
"""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_PARAMS = str(Path(__file__).resolve().parents[1] / "params" / "vla_bridge.yaml")


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v) if any(c in v for c in " ,[]{}=:'\"") else v
    return str(v)


def params_to_overrides(params_file: str, node_name: str = "vla_bridge") -> list[str]:
    import yaml

    doc = yaml.safe_load(Path(params_file).read_text())
    section = doc.get(node_name) or doc.get("/**") or {}
    params = section.get("ros__parameters", {})

    out: list[str] = []

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict) and not prefix.endswith("cameras"):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(node, dict):  # a free-form map (camera name -> topic)
            for k, v in node.items():
                out.append(f"{prefix}.{k}={_value(v)}")
        else:
            out.append(f"{prefix}={_value(node)}")

    walk("", params)
    return out


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
    from launch.substitutions import LaunchConfiguration

    def launch_bridge(context):
        params_file = LaunchConfiguration("params_file").perform(context)
        extra = LaunchConfiguration("extra").perform(context).split()
        return [ExecuteProcess(cmd=["vla-bridge", *params_to_overrides(params_file), *extra], output="screen",
                               sigterm_timeout="5")]

    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=DEFAULT_PARAMS),
        DeclareLaunchArgument("extra", default_value=""),
        OpaqueFunction(function=launch_bridge),
    ])
