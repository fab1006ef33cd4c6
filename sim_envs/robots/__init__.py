"""Robot registry: `get_robot(name)` -> `RobotDescription` (`sim.robot=<name>` in the hydra configs).

    panda   Franka Panda + Franka hand (gymnasium-robotics assets), 7 joints: the default
    ur5e    Universal Robots UR5e + Rethink electric parallel gripper (robosuite assets), 6 joints

A new arm is one module here defining a `RobotDescription` (see `description.py` for what it must provide)
and one line in `ROBOTS`.
"""

from __future__ import annotations

from sim_envs.robots.description import CameraMount, RobotDescription
from sim_envs.robots.panda import PANDA
from sim_envs.robots.ur5e import UR5E

#: Name -> description: the one table every robot choice is resolved from.
ROBOTS: dict[str, RobotDescription] = {r.name: r for r in (PANDA, UR5E)}
DEFAULT_ROBOT = "panda"


def get_robot(robot: str | RobotDescription = DEFAULT_ROBOT) -> RobotDescription:
    """The description of `robot` (a registered name, or a description passed through)."""
    if isinstance(robot, RobotDescription):
        return robot
    try:
        return ROBOTS[robot]
    except KeyError:
        raise ValueError(f"unknown robot {robot!r}; choose one of {sorted(ROBOTS)} (sim.robot=<name>; "
                         "sim_envs/robots/ holds one module per robot)") from None


__all__ = ["CameraMount", "DEFAULT_ROBOT", "ROBOTS", "RobotDescription", "get_robot"]
