"""The node's states and status levels, as ROS 2 names them (managed nodes; diagnostic_msgs)."""

from __future__ import annotations

import enum


class Lifecycle(str, enum.Enum):  # the primary states of a ROS 2 managed node
    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    ACTIVE = "active"
    FINALIZED = "finalized"


#: the states each transition starts from (ROS 2 managed-node state machine; cleanup also from ACTIVE here,
#: through deactivate)
TRANSITION_FROM = {"configure": ("unconfigured",), "activate": ("inactive",), "deactivate": ("active",),
                   "cleanup": ("inactive", "active"), "shutdown": ("unconfigured", "inactive", "active")}


class Level(enum.IntEnum):  # diagnostic_msgs/DiagnosticStatus levels
    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3
