"""ROS 2 standard messages as Cyclone DDS types, byte-identical to what a ROS 2 node sends.

A ROS 2 type `pkg/msg/Name` travels over DDS as `pkg::msg::dds_::Name_` with a *final* (XCDR1) encoding;
fields keep the `.msg` order (see shared/facts/ros2.md and rmw_cyclonedds). The tests serialize every type
here with `rosbags` (an independent ROS 2 CDR implementation) and compare bytes.

Performance: cyclonedds-python encodes `sequence<uint8>` one element at a time (about 3.5 ms for a
224x224x3 image). `_use_raw_bytes_for` swaps that member's machine (Image and CompressedImage data) for the library's raw-bytes machine,
which writes the same bytes (uint32 length + payload) in ~0.02 ms. It touches library internals, so the
version is pinned (requirements-cpu.txt: cyclonedds==11.0.1) and `tests/test_bridge_msgs.py` checks the bytes.
"""
from dataclasses import dataclass, field

import numpy as np
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import float64, int32, sequence, uint8, uint32

from robot_bridge.images import array_from_image  # noqa: F401  (the inverse of image_from_array, numpy only)

#: The cyclonedds version the raw-bytes patch was checked against.
CYCLONEDDS_VERSION = "11.0.1"


# ---- builtin_interfaces / std_msgs ------------------------------------------------------------------
@dataclass
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
class Duration(IdlStruct, typename="builtin_interfaces::msg::dds_::Duration_"):
    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@dataclass
class String(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str = ""


@dataclass
class Bool(IdlStruct, typename="std_msgs::msg::dds_::Bool_"):
    data: bool = False


@dataclass
class MultiArrayDimension(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayDimension_"):
    label: str = ""
    size: uint32 = 0
    stride: uint32 = 0


@dataclass
class MultiArrayLayout(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayLayout_"):
    dim: sequence[MultiArrayDimension] = field(default_factory=list)
    data_offset: uint32 = 0


@dataclass
class Float64MultiArray(IdlStruct, typename="std_msgs::msg::dds_::Float64MultiArray_"):
    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: sequence[float64] = field(default_factory=list)


# ---- geometry_msgs ------------------------------------------------------------------------------------
@dataclass
class Vector3(IdlStruct, typename="geometry_msgs::msg::dds_::Vector3_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0


@dataclass
class Point(IdlStruct, typename="geometry_msgs::msg::dds_::Point_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0


@dataclass
class Quaternion(IdlStruct, typename="geometry_msgs::msg::dds_::Quaternion_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0
    w: float64 = 1.0


@dataclass
class Twist(IdlStruct, typename="geometry_msgs::msg::dds_::Twist_"):
    linear: Vector3 = field(default_factory=Vector3)
    angular: Vector3 = field(default_factory=Vector3)


@dataclass
class TwistStamped(IdlStruct, typename="geometry_msgs::msg::dds_::TwistStamped_"):
    header: Header = field(default_factory=Header)
    twist: Twist = field(default_factory=Twist)


@dataclass
class Pose(IdlStruct, typename="geometry_msgs::msg::dds_::Pose_"):
    position: Point = field(default_factory=Point)
    orientation: Quaternion = field(default_factory=Quaternion)


@dataclass
class PoseStamped(IdlStruct, typename="geometry_msgs::msg::dds_::PoseStamped_"):
    header: Header = field(default_factory=Header)
    pose: Pose = field(default_factory=Pose)


# ---- sensor_msgs ----------------------------------------------------------------------------------------
@dataclass
class Image(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header = field(default_factory=Header)
    height: uint32 = 0
    width: uint32 = 0
    encoding: str = ""
    is_bigendian: uint8 = 0
    step: uint32 = 0
    data: sequence[uint8] = field(default_factory=bytes)


@dataclass
class CompressedImage(IdlStruct, typename="sensor_msgs::msg::dds_::CompressedImage_"):
    header: Header = field(default_factory=Header)
    format: str = ""  # e.g. "jpeg", "png", "rgb8; jpeg compressed bgr8" (image_transport)
    data: sequence[uint8] = field(default_factory=bytes)


@dataclass
class JointState(IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    header: Header = field(default_factory=Header)
    name: sequence[str] = field(default_factory=list)
    position: sequence[float64] = field(default_factory=list)
    velocity: sequence[float64] = field(default_factory=list)
    effort: sequence[float64] = field(default_factory=list)


# ---- trajectory_msgs ------------------------------------------------------------------------------------
@dataclass
class JointTrajectoryPoint(IdlStruct, typename="trajectory_msgs::msg::dds_::JointTrajectoryPoint_"):
    positions: sequence[float64] = field(default_factory=list)
    velocities: sequence[float64] = field(default_factory=list)
    accelerations: sequence[float64] = field(default_factory=list)
    effort: sequence[float64] = field(default_factory=list)
    time_from_start: Duration = field(default_factory=Duration)


@dataclass
class JointTrajectory(IdlStruct, typename="trajectory_msgs::msg::dds_::JointTrajectory_"):
    header: Header = field(default_factory=Header)
    joint_names: sequence[str] = field(default_factory=list)
    points: sequence[JointTrajectoryPoint] = field(default_factory=list)


# ---- diagnostic_msgs (the bridge's status topic) -------------------------------------------------------
@dataclass
class KeyValue(IdlStruct, typename="diagnostic_msgs::msg::dds_::KeyValue_"):
    key: str = ""
    value: str = ""


@dataclass
class DiagnosticStatus(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticStatus_"):
    level: uint8 = 0  # OK=0 WARN=1 ERROR=2 STALE=3 (ROS `byte`, one octet on the wire)
    name: str = ""
    message: str = ""
    hardware_id: str = ""
    values: sequence[KeyValue] = field(default_factory=list)


@dataclass
class DiagnosticArray(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticArray_"):
    header: Header = field(default_factory=Header)
    status: sequence[DiagnosticStatus] = field(default_factory=list)


#: ROS 2 type name (`pkg/msg/Name`, what `ros2 topic info` and rosbag2 show) -> DDS type class.
ROS_TYPES: dict[str, type[IdlStruct]] = {
    "builtin_interfaces/msg/Time": Time,
    "builtin_interfaces/msg/Duration": Duration,
    "std_msgs/msg/Header": Header,
    "std_msgs/msg/String": String,
    "std_msgs/msg/Bool": Bool,
    "std_msgs/msg/MultiArrayDimension": MultiArrayDimension,
    "std_msgs/msg/MultiArrayLayout": MultiArrayLayout,
    "std_msgs/msg/Float64MultiArray": Float64MultiArray,
    "geometry_msgs/msg/Vector3": Vector3,
    "geometry_msgs/msg/Point": Point,
    "geometry_msgs/msg/Quaternion": Quaternion,
    "geometry_msgs/msg/Twist": Twist,
    "geometry_msgs/msg/TwistStamped": TwistStamped,
    "geometry_msgs/msg/Pose": Pose,
    "geometry_msgs/msg/PoseStamped": PoseStamped,
    "sensor_msgs/msg/Image": Image,
    "sensor_msgs/msg/CompressedImage": CompressedImage,
    "sensor_msgs/msg/JointState": JointState,
    "trajectory_msgs/msg/JointTrajectoryPoint": JointTrajectoryPoint,
    "trajectory_msgs/msg/JointTrajectory": JointTrajectory,
    "diagnostic_msgs/msg/KeyValue": KeyValue,
    "diagnostic_msgs/msg/DiagnosticStatus": DiagnosticStatus,
    "diagnostic_msgs/msg/DiagnosticArray": DiagnosticArray,
}
ROS_NAME = {cls: name for name, cls in ROS_TYPES.items()}


def _use_raw_bytes_for(cls: type[IdlStruct], member: str) -> None:
    """Encode `cls.member` (a sequence<uint8>) with cyclonedds' raw-bytes machine.

    Same wire bytes as the element-wise machine (4-aligned uint32 count, then the octets); decoding gives
    `bytes` instead of a list of ints. Checked against cyclonedds 11.0.1 (`idl/_machinery.py`: BytesMachine,
    PlainCdrV2SequenceOfPrimitiveMachine); the byte test in tests/test_bridge_msgs.py guards upgrades.
    """
    from cyclonedds.idl._machinery import BytesMachine, PlainCdrV2SequenceOfPrimitiveMachine

    idl = cls.__idl__
    idl.populate()
    for machine in (idl.v1_machine, idl.v2_machine):
        old = machine.members_machines[member]
        if not isinstance(old, (PlainCdrV2SequenceOfPrimitiveMachine, BytesMachine)):
            raise RuntimeError(
                f"cyclonedds changed how {cls.__name__}.{member} is encoded ({type(old).__name__}); "
                f"the raw-bytes patch was written for cyclonedds=={CYCLONEDDS_VERSION}"
            )
        machine.members_machines[member] = BytesMachine()


_use_raw_bytes_for(Image, "data")
_use_raw_bytes_for(CompressedImage, "data")


# ---- helpers ------------------------------------------------------------------------------------------
def to_time(seconds: float) -> Time:
    """builtin_interfaces/Time from float seconds (floor, so nanosec stays in [0, 1e9))."""
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def from_time(t: Time) -> float:
    return float(t.sec) + float(t.nanosec) * 1e-9


def header(stamp: float, frame_id: str = "") -> Header:
    return Header(stamp=to_time(stamp), frame_id=frame_id)


def camera_message(topics, cam: str) -> type:
    """The message class of camera `cam`'s topic under a `TopicsConfig`: CompressedImage or Image."""
    return CompressedImage if cam in topics.compressed_cameras else Image


def image_from_array(img: np.ndarray, stamp: float, frame_id: str = "") -> Image:
    """sensor_msgs/Image (rgb8) from a uint8 (H, W, 3) array."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image_from_array expects uint8 (H, W, 3), got {img.dtype} {img.shape}")
    h, w, _ = img.shape
    return Image(header=header(stamp, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0,
                 step=w * 3, data=img.tobytes())


def float64_array(values, label: str = "") -> Float64MultiArray:
    values = [float(v) for v in values]
    dim = [MultiArrayDimension(label=label, size=len(values), stride=len(values))] if label else []
    return Float64MultiArray(layout=MultiArrayLayout(dim=dim, data_offset=0), data=values)


def serialize(msg: IdlStruct) -> bytes:
    """CDR bytes with the 4-byte encapsulation header, as ROS 2 and rosbag2 store them."""
    return msg.serialize()


def deserialize(cls: type[IdlStruct], data: bytes) -> IdlStruct:
    return cls.deserialize(data)
