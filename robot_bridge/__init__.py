"""ROS 2 bridge: run a `vla.Policy` on a robot arm safely, record sessions, convert them to RLDS.

Modules (heavy dependencies such as cyclonedds, rosbags, torch and tensorflow are imported where used):
    msgs           ROS 2 standard messages as Cyclone DDS types (CDR byte-identical to ROS 2)
    images         sensor_msgs/Image -> RGB array (live and recorded messages; numpy only)
    transport/     interface and QoS profiles (`base.py`), direct DDS (`dds.py`, default, no ROS install),
                   rclpy (`ros.py`), `make_transport` (`factory.py`)
    safety         limits, workspace box, rejection of bad actions
    node           the rate loop: observation assembly, policy call, safety, watchdog, e-stop, lifecycle
    commands       safe action -> TwistStamped / Float64MultiArray / JointTrajectory / gripper; stop messages
    policy_server  `vla.serving`'s policy server and `RemotePolicy` (JSON + raw bytes, no pickle), re-exported
    policies       the bridge's policy config, built by vla's policy registry (registers `remote`, `tiny_cnn`)
    sim_arm        a simulated arm on the real arm's topics (any gymnasium env id) for sim in the loop
    recorder       rosbag2 (mcap/sqlite3) recording;  convert: rosbag2 -> RLDS (`BagConverter`)
    app, cli/      `vla-bridge` and `vla-convert` (hydra apps);  launch/, params/: ROS 2 launch + parameters
User guide: docs/bridge.md.

Importing the package registers its policy kinds with `vla.policy` (cheap: numpy only).
"""

from robot_bridge import policies as _policies  # noqa: F401  (registers the kinds remote and tiny_cnn)
