"""Wire compatibility: our DDS message types encode byte for byte like ROS 2 (rosbags as the oracle)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cyclonedds")
rosbags_typesys = pytest.importorskip("rosbags.typesys")

from robot_bridge import msgs as m  # noqa: E402

TS = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_HUMBLE)


def to_rosbags(msg, ros_name: str):
    """Build the rosbags message for `msg` field by field from rosbags' own field definitions."""
    cls = TS.types[ros_name]
    _, fields = TS.fielddefs[ros_name]
    kwargs = {}
    for fname, (kind, desc) in fields:
        value = getattr(msg, fname)
        if kind.name == "NAME":
            kwargs[fname] = to_rosbags(value, desc)
        elif kind.name == "SEQUENCE":
            (sub_kind, sub_desc), _ = desc
            if sub_kind.name == "NAME":
                kwargs[fname] = [to_rosbags(v, sub_desc) for v in value]
            elif sub_desc[0] == "string":
                kwargs[fname] = list(value)
            else:
                dtype = {"uint8": np.uint8, "float64": np.float64, "int32": np.int32}[sub_desc[0]]
                arr = np.frombuffer(value, np.uint8) if isinstance(value, bytes) else np.asarray(value, dtype)
                kwargs[fname] = arr.astype(dtype)
        else:
            kwargs[fname] = value
    return cls(**kwargs)


def _samples():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)
    hdr = m.header(1234.5678, "base_link")
    return [
        m.String(data="pick up the red block"),
        m.String(data=""),
        m.Bool(data=True),
        hdr,
        m.image_from_array(img, 17.25, "primary_camera"),
        m.image_from_array(img[:5, :3], 0.0),  # odd sizes exercise alignment after the byte payload
        m.CompressedImage(header=hdr, format="jpeg", data=bytes(range(7))),  # 7 bytes: unaligned end
        m.JointState(header=hdr, name=["j1", "j2", "finger"], position=[0.1, -0.2, 0.04], velocity=[0.0] * 3,
                     effort=[]),
        m.TwistStamped(header=hdr, twist=m.Twist(linear=m.Vector3(0.1, -0.2, 0.3), angular=m.Vector3(0.01, 0, -1))),
        m.PoseStamped(header=hdr, pose=m.Pose(position=m.Point(0.4, 0.0, 0.3),
                                              orientation=m.Quaternion(0.0, 1.0, 0.0, 0.0))),
        m.float64_array([0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 1.0], label="ee_velocity"),
        m.float64_array([]),
        m.JointTrajectory(header=hdr, joint_names=["a", "b"], points=[
            m.JointTrajectoryPoint(positions=[1.0, 2.0], velocities=[0.0, 0.0],
                                   time_from_start=m.Duration(sec=0, nanosec=100_000_000))]),
        m.DiagnosticArray(header=hdr, status=[m.DiagnosticStatus(level=2, name="vla_bridge", message="e-stop",
                                                                 hardware_id="arm", values=[m.KeyValue("k", "v")])]),
        m.Vector3(1.0, 2.0, 3.0),
        m.Time(sec=-1, nanosec=5),
    ]


@pytest.mark.parametrize("msg", _samples(), ids=lambda x: type(x).__name__)
def test_cdr_matches_rosbags_byte_for_byte(msg):
    ros_name = m.ROS_NAME[type(msg)]
    ours = m.serialize(msg)
    oracle = bytes(TS.serialize_cdr(to_rosbags(msg, ros_name), ros_name))
    assert ours == oracle
    back = m.deserialize(type(msg), oracle)
    assert m.serialize(back) == oracle
    # rosbags reads ours too
    TS.deserialize_cdr(ours, ros_name)


def test_dds_type_names_follow_rmw_cyclonedds():
    for ros_name, cls in m.ROS_TYPES.items():
        pkg, _, name = ros_name.split("/")
        assert cls.__idl_typename__.replace(".", "::") == f"{pkg}::msg::dds_::{name}_"
        cls.__idl__.populate()  # lazy in cyclonedds: alone (no earlier serialization) the header is not set yet
        assert cls.__idl__.xcdrv1_head == 0x00  # final (XCDR1); appendable/mutable would be rejected by ROS 2


def test_image_uses_raw_bytes_with_identical_encoding():
    """The uint8-sequence patch: same bytes as the element-wise encoder, far faster (pinned cyclonedds)."""
    from importlib.metadata import version

    from cyclonedds.idl._machinery import BytesMachine, PlainCdrV2SequenceOfPrimitiveMachine

    assert version("cyclonedds") == m.CYCLONEDDS_VERSION, "re-check robot_bridge.msgs._use_raw_bytes_for"
    img = np.arange(224 * 224 * 3, dtype=np.uint32).astype(np.uint8).reshape(224, 224, 3)
    msg = m.image_from_array(img, 3.0, "cam")
    machine = m.Image.__idl__.v1_machine.members_machines["data"]
    assert isinstance(machine, BytesMachine)
    # The library's own element-wise encoding of the same member gives the same bytes.
    from cyclonedds.idl._support import Buffer
    a, b = Buffer(), Buffer()
    machine.serialize(a, msg.data)
    PlainCdrV2SequenceOfPrimitiveMachine(m.uint8).serialize(b, list(msg.data))
    assert a.asbytes() == b.asbytes()
    data = m.serialize(msg)  # speed is measured in bench/bridge.py
    np.testing.assert_array_equal(m.array_from_image(m.deserialize(m.Image, data)), img)


def test_image_decoding_handles_encodings_and_rejects_malformed():
    img = np.random.default_rng(1).integers(0, 255, (4, 6, 3), dtype=np.uint8)
    bgr = m.Image(height=4, width=6, encoding="bgr8", step=18, data=img[..., ::-1].tobytes())
    np.testing.assert_array_equal(m.array_from_image(bgr), img)
    padded = m.Image(height=4, width=6, encoding="rgb8", step=20,
                     data=np.pad(img.reshape(4, 18), ((0, 0), (0, 2))).tobytes())
    np.testing.assert_array_equal(m.array_from_image(padded), img)
    with pytest.raises(ValueError, match="malformed"):
        m.array_from_image(m.Image(height=4, width=6, encoding="rgb8", step=18, data=b"123"))
    with pytest.raises(ValueError, match="unsupported image encoding"):
        m.array_from_image(m.Image(height=1, width=1, encoding="32FC1", step=4, data=b"0000"))


def test_time_roundtrip():
    for s in (0.0, 1.5, 1e9 + 0.123456789, 17.999999999):
        t = m.to_time(s)
        assert 0 <= t.nanosec < 1_000_000_000
        assert abs(m.from_time(t) - s) < 1e-6
