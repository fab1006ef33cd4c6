"""Reading real rosbag2 recordings for `vla-convert`: the storage's own tables, clear errors, CompressedImage,
instructions, message definitions per distro.

Real bags: ROS 2's own rosbag2 test resources (tests/fixtures/rosbag2/README.md). Others are written here with
`rosbags` (an independent rosbag2 implementation) and then altered the way real ones differ.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("rosbags")

from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from robot_bridge.bags import Bag, BagCountError, BagError  # noqa: E402
from robot_bridge.convert import ConvertConfig, bag_to_episodes, convert  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "rosbag2"
KILTED = get_typestore(Stores.ROS2_KILTED)
T0 = 1_700_000_000


# ---- bags written here -------------------------------------------------------------------------------------
def _header(ts, t: float, frame: str = "cam"):
    H, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    return H(stamp=Time(sec=int(t), nanosec=int(round((t % 1) * 1e9))), frame_id=frame)


def _jpeg(img: np.ndarray, fmt: str = "JPEG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, quality=95)
    return buf.getvalue()


def frame(k: int) -> np.ndarray:
    """Frame k of the synthetic camera: smooth, so JPEG keeps it within a few levels."""
    y, x = np.mgrid[0:32, 0:48]
    return np.stack([(x * 4 + k * 5) % 256, (y * 6) % 256, np.full_like(x, 40 + k * 3)], -1).astype(np.uint8)


def write_bag(path: Path, streams: dict[str, tuple[str, list[tuple[float, object]]]], *, storage: str = "mcap",
              ts=KILTED, compression: str | None = None) -> Path:
    """A rosbag2 at `path`: {topic: (type, [(time, message)])}, receive time = the given time."""
    w = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
    if compression:
        w.set_compression(CompressionMode[compression.upper()], CompressionFormat.ZSTD)
    with w:
        conns = {topic: w.add_connection(topic, typ, typestore=ts) for topic, (typ, _) in streams.items()}
        rows = sorted((t, topic, m) for topic, (_, items) in streams.items() for t, m in items)
        for t, topic, m in rows:
            w.write(conns[topic], int(t * 1e9), ts.serialize_cdr(m, streams[topic][0]))
    return path


def robot_streams(n: int = 12, *, compressed: str | None = "JPEG", instruction: str | None = "stack the cups",
                  instruction_type: str = "std_msgs/msg/String", ts=KILTED) -> dict:
    """A 10 Hz robot session: camera (CompressedImage or Image), joint states, the bridge's commands."""
    cam, joints, action = [], [], []
    for k in range(n):
        t = T0 + 0.1 * k
        if compressed:
            data = _jpeg(frame(k), compressed)
            cam.append((t, ts.types["sensor_msgs/msg/CompressedImage"](
                header=_header(ts, t), format=f"rgb8; {compressed.lower()} compressed bgr8",
                data=np.frombuffer(data, np.uint8))))
        else:
            img = frame(k)
            cam.append((t, ts.types["sensor_msgs/msg/Image"](
                header=_header(ts, t), height=32, width=48, encoding="rgb8", is_bigendian=0, step=48 * 3,
                data=img.reshape(-1))))
        js = ts.types["sensor_msgs/msg/JointState"]
        joints.append((t, js(header=_header(ts, t, "base"), name=["a", "b"], position=np.array([k, -k], float),
                             velocity=np.zeros(0), effort=np.zeros(0))))
        action.append((t + 0.02, js(header=_header(ts, t, "base"), name=list("xyzrpwg"),
                                    position=np.array([0.01, 0, 0, 0, 0, 0.02, 1.0]), velocity=np.zeros(0),
                                    effort=np.zeros(0))))
    cam_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    streams = {"/camera/primary/image_raw" + ("/compressed" if compressed else ""): (cam_type, cam),
               "/joint_states": ("sensor_msgs/msg/JointState", joints),
               "/vla_bridge/action": ("sensor_msgs/msg/JointState", action)}
    if instruction is not None:
        streams["/vla/instruction"] = (instruction_type, [(T0 - 0.5, ts.types[instruction_type](data=instruction))])
    return streams


def ccfg(**kw) -> ConvertConfig:
    topics = kw.pop("topics", None)
    cfg = ConvertConfig(image_size=[32, 48], align="commands", **kw)
    cfg.topics.cameras = {"primary": "/camera/primary/image_raw/compressed"}
    for k, v in (topics or {}).items():
        setattr(cfg.topics, k, v)
    return cfg


def strip_definitions(db3: Path) -> None:
    """Empty the definitions a sqlite3 bag carries (as Humble's sqlite3 plugin never wrote them)."""
    with sqlite3.connect(db3) as c:
        c.execute("UPDATE message_definitions SET encoded_message_definition = ''")


def edit_metadata(bag: Path, fn) -> None:
    p = bag / "metadata.yaml"
    meta = yaml.safe_load(p.read_text())
    fn(meta["rosbag2_bagfile_information"])
    p.write_text(yaml.safe_dump(meta))


# ---- real rosbag2 resources --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["talker_sqlite3", "talker_mcap"])
def test_real_bag_whose_metadata_qos_differs_reads_like_rosbag2(name):
    from rosbags.rosbag2 import Reader

    path = FIXTURES / name
    with Reader(path) as r:  # the failure this module exists for: 0 of 10, no error
        assert sum(1 for c, _, _ in r.messages() if c.topic == "/topic") == 0
    with Bag(path) as bag:
        assert bag.topics["/topic"].type == "std_msgs/msg/String" and bag.topics["/topic"].count == 10
        got = bag.read(["/topic"])["/topic"]
        assert [m.data for _, _, m in got] == [f"Hello, world! {i}" for i in range(10)]
        assert "the bag's own" in bag.definitions


def test_wrong_embedded_definitions_name_the_distros_that_decode():
    """talker.db3 carries placeholder definitions (Log = `uint8 level`): the error says which distro decodes."""
    with Bag(FIXTURES / "talker_sqlite3") as bag:
        assert bag.ros_distro == "rolling"
        with pytest.raises(BagError, match=r"/rosout does not decode as rcl_interfaces/msg/Log.*distro=.*humble"):
            bag.read(["/rosout"])
    with Bag(FIXTURES / "talker_sqlite3", distro="humble") as bag:
        logs = bag.read(["/rosout"])["/rosout"]
        assert len(logs) == 10 and logs[0][2].name == "minimal_publisher"
        assert bag.definitions.startswith("ROS 2 humble (chosen with distro=humble)")


def test_types_no_distro_has_decode_with_the_bags_own_definitions():
    with Bag(FIXTURES / "cdr_test_mcap") as bag:
        data = bag.read(["/test_topic", "/array_topic"])
        assert len(data["/test_topic"]) == 3 and data["/test_topic"][0][2].int32_value == 123
        assert len(data["/array_topic"]) == 4


def test_no_configured_topic_in_the_bag_lists_the_bags_topics():
    cfg = ConvertConfig()
    with pytest.raises(BagError, match=r"(?s)none of the configured topics.*/topic +std_msgs/msg/String +\(10 messages\)"
                                       r".*convert.topics.cameras.primary="):
        bag_to_episodes(FIXTURES / "talker_mcap", cfg)


# ---- bags written here and altered -------------------------------------------------------------------------
def test_compressed_camera_converts_and_metadata_type_and_qos_text_do_not_matter(tmp_path):
    bag = write_bag(tmp_path / "bag", robot_streams())

    def alter(meta):  # what other writers put there: another type spelling, QoS text rosbags cannot pair
        for t in meta["topics_with_message_count"]:
            t["topic_metadata"]["offered_qos_profiles"] = "- history: 3\n  depth: 0\n  reliability: 1\n"
            if t["topic_metadata"]["name"] == "/joint_states":
                t["topic_metadata"]["type"] = "sensor_msgs/JointState"
    edit_metadata(bag, alter)
    (ep,) = bag_to_episodes(bag, ccfg())
    assert len(ep) == 12 and ep.instruction == "stack the cups"
    for k in range(12):  # JPEG at quality 95 of a smooth image: within a few levels
        assert np.abs(ep.images["primary"][k].astype(int) - frame(k)).mean() < 2.0
    np.testing.assert_allclose(ep.state[:, 0], np.arange(12))
    np.testing.assert_allclose(ep.action[:, 0], 0.01, atol=1e-7)


def test_png_and_raw_cameras_and_compressed_files(tmp_path):
    (ep,) = bag_to_episodes(write_bag(tmp_path / "png", robot_streams(compressed="PNG")), ccfg())
    np.testing.assert_array_equal(ep.images["primary"], np.stack([frame(k) for k in range(12)]))  # lossless
    for mode in ("file", "message"):
        bag = write_bag(tmp_path / mode, robot_streams(compressed=None), storage="sqlite3", compression=mode)
        (ep,) = bag_to_episodes(bag, ccfg(topics={"cameras": {"primary": "/camera/primary/image_raw"}}))
        np.testing.assert_array_equal(ep.images["primary"], np.stack([frame(k) for k in range(12)]))


def test_a_single_storage_file_converts(tmp_path):
    bag = write_bag(tmp_path / "bag", robot_streams())
    (ep,) = bag_to_episodes(next(bag.glob("*.mcap")), ccfg())
    assert len(ep) == 12


def test_counts_checked_against_storage_and_metadata(tmp_path):
    bag = write_bag(tmp_path / "bag", robot_streams())
    edit_metadata(bag, lambda m: m["topics_with_message_count"][0].__setitem__(
        "message_count", m["topics_with_message_count"][0]["message_count"] + 3))
    with pytest.raises(BagCountError, match=r"read 12 messages on .* the bag metadata says 15.*ros2 bag reindex"):
        bag_to_episodes(bag, ccfg())
    (ep,) = bag_to_episodes(bag, ccfg(strict_counts=False))
    assert len(ep) == 12


def test_missing_instruction_is_an_error_or_an_explicit_option(tmp_path):
    bag = write_bag(tmp_path / "bag", robot_streams(instruction=None))
    with pytest.raises(ValueError, match=r"(?s)no instruction: no messages on /vla/instruction.*convert.instruction="):
        bag_to_episodes(bag, ccfg())
    (ep,) = bag_to_episodes(bag, ccfg(instruction="wipe the table"))
    assert ep.instruction == "wipe the table"
    empty = write_bag(tmp_path / "empty", robot_streams(instruction=""))
    with pytest.raises(ValueError, match="empty instruction message on /vla/instruction"):
        bag_to_episodes(empty, ccfg())


def test_unknown_message_type_names_topic_type_and_fix(tmp_path):
    """example_interfaces/msg/String on the instruction topic, recorded without its definition."""
    ts = get_typestore(Stores.ROS2_KILTED)
    from rosbags.typesys import get_types_from_msg

    ts.register(get_types_from_msg("string data", "example_interfaces/msg/String"))
    bag = write_bag(tmp_path / "bag", robot_streams(instruction_type="example_interfaces/msg/String", ts=ts),
                    storage="sqlite3", ts=ts)
    strip_definitions(next(bag.glob("*.db3")))
    with pytest.raises(BagError, match=r"topic /vla/instruction has type example_interfaces/msg/String.*"
                                       r"msg_files=\[path/to/example_interfaces/msg/String.msg\]"):
        bag_to_episodes(bag, ccfg())
    msg = tmp_path / "defs" / "example_interfaces" / "msg" / "String.msg"
    msg.parent.mkdir(parents=True)
    msg.write_text("# as in example_interfaces\nstring data\n")
    (ep,) = bag_to_episodes(bag, ccfg(msg_files=[str(msg)]))
    assert ep.instruction == "stack the cups"


def test_wrong_type_for_a_role_and_non_cdr_serialization(tmp_path):
    streams = robot_streams()
    streams["/joint_states"] = ("std_msgs/msg/String", [(T0, KILTED.types["std_msgs/msg/String"](data="x"))])
    with pytest.raises(BagError, match=r"/joint_states \(joint_states topic\) has type std_msgs/msg/String; it must be "
                                       r"sensor_msgs/msg/JointState"):
        bag_to_episodes(write_bag(tmp_path / "a", streams), ccfg())
    bag = write_bag(tmp_path / "b", robot_streams(), storage="sqlite3")
    with sqlite3.connect(next(bag.glob("*.db3"))) as c:
        c.execute("UPDATE topics SET serialization_format = 'ros1' WHERE name = '/joint_states'")
    with pytest.raises(BagError, match=r"topic /joint_states is serialized as 'ros1', not CDR"):
        bag_to_episodes(bag, ccfg())


def test_unknown_storage_formats(tmp_path):
    bag = write_bag(tmp_path / "bag", robot_streams())
    edit_metadata(bag, lambda m: m.__setitem__("storage_identifier", "hdf5"))
    with pytest.raises(BagError, match=r"storage format 'hdf5' is not supported \(supported: \['mcap', 'sqlite3'\]\).*"
                                       r"ros2 bag convert"):
        bag_to_episodes(bag, ccfg())
    ros1 = tmp_path / "old.bag"
    ros1.write_bytes(b"#ROSBAG V2.0\n")
    with pytest.raises(BagError, match="a ROS 1 bag: convert it with `rosbags-convert"):
        bag_to_episodes(ros1, ccfg())
    with pytest.raises(FileNotFoundError, match=r"no metadata.yaml; files there: \['x.mcap'\]"):
        (tmp_path / "nometa").mkdir()
        (tmp_path / "nometa" / "x.mcap").write_bytes(b"")
        bag_to_episodes(tmp_path / "nometa", ccfg())


def test_message_definitions_default_to_the_bags_distro_and_can_be_chosen(tmp_path):
    """A Kilted `sensor_msgs/Range` has `variance`, a Humble one does not; the bag carries no definitions."""
    Range = KILTED.types["sensor_msgs/msg/Range"]
    items = [(T0 + i, Range(header=_header(KILTED, T0 + i), radiation_type=0, field_of_view=0.5, min_range=0.1,
                            max_range=4.0, range=1.0 + i, variance=0.25)) for i in range(3)]
    bag = write_bag(tmp_path / "bag", {"/range": ("sensor_msgs/msg/Range", items)}, storage="sqlite3")
    strip_definitions(next(bag.glob("*.db3")))
    edit_metadata(bag, lambda m: m.__setitem__("ros_distro", "kilted"))
    with Bag(bag) as b:
        got = b.read(["/range"])["/range"]
        assert [m.variance for _, _, m in got] == [0.25] * 3
        assert b.definitions == "ROS 2 kilted (the bag's ros_distro)"
    with Bag(bag, distro="humble") as b:
        with pytest.raises(BagError, match=r"does not decode as sensor_msgs/msg/Range with ROS 2 humble.*"
                                           r"decodes with distro=iron or jazzy or kilted"):
            b.read(["/range"])
    edit_metadata(bag, lambda m: m.pop("ros_distro"))
    with Bag(bag) as b:  # a bag naming no distro: Humble assumed, and said
        assert "humble (assumed: the bag names ros_distro 'rosbags'" in (b.typestore() and b.definitions)
    with pytest.raises(ValueError, match="convert.distro='rolling'; choose one of"):
        ConvertConfig(distro="rolling")


def test_convert_cli_errors_are_one_line_of_advice(tmp_path):
    """vla-convert on a bag without the configured topics: exit 2 with the bag's topics, no traceback."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "robot_bridge.cli.convert", f"bags=[{FIXTURES / 'talker_mcap'}]",
                        f"output_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "none of the configured topics" in r.stderr + r.stdout and "Traceback" not in r.stderr + r.stdout


def test_compressed_depth_and_undecodable_data_are_named():
    from types import SimpleNamespace

    from robot_bridge.images import array_from_compressed

    with pytest.raises(ValueError, match="depth image"):
        array_from_compressed(SimpleNamespace(format="16UC1; compressedDepth png", data=b"\x00"))
    with pytest.raises(ValueError, match="'jpeg': cannot decode its 3 bytes"):
        array_from_compressed(SimpleNamespace(format="jpeg", data=b"abc"))
    gray = SimpleNamespace(format="mono8; png compressed mono8", data=_jpeg(np.full((4, 5), 7, np.uint8), "PNG"))
    np.testing.assert_array_equal(array_from_compressed(gray), np.full((4, 5, 3), 7, np.uint8))
