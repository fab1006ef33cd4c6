"""RLDSReader (TensorFlow-free) returns exactly what TFDS returns, and fails clearly on damaged data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vla.data.example_proto import parse_example
from vla.data.rlds_reader import DatasetFormatError, RLDSReader
from vla.data.tfrecord import TFRecordError, index_records, iter_records, write_records


def _stack(items):
    if isinstance(items[0], dict):
        return {k: _stack([x[k] for x in items]) for k in items[0]}
    if isinstance(items[0], bytes):
        out = np.empty(len(items), object)
        out[:] = items
        return out
    return np.stack(items)


def _tfds_episodes(dataset_dir, split, decode_images):
    tfds = pytest.importorskip("tensorflow_datasets")
    builder = tfds.builder_from_directory(str(dataset_dir))
    decoders = None
    if not decode_images:  # TFDS's way of keeping images encoded: SkipDecoding on every image feature
        def skip(feature):
            if isinstance(feature, tfds.features.Image):
                return tfds.decode.SkipDecoding()
            if isinstance(feature, (tfds.features.FeaturesDict, dict)):
                return {k: skip(v) for k, v in feature.items()}
            if isinstance(feature, tfds.features.Dataset):
                return skip(feature.feature)
            return None

        decoders = {k: v for k, v in skip(builder.info.features).items() if v}
        decoders = {k: v for k, v in decoders.items() if not (isinstance(v, dict) and not v)}
    ds = builder.as_dataset(split=split, decoders=decoders)
    return [dict(e, steps=_stack(list(e["steps"]))) for e in tfds.as_numpy(ds)]


def _assert_same(ours, ref, path="episode"):
    if isinstance(ref, dict):
        assert isinstance(ours, dict) and set(ours) == set(ref), f"{path}: keys {sorted(ours)} != {sorted(ref)}"
        for k in ref:
            _assert_same(ours[k], ref[k], f"{path}/{k}")
    elif isinstance(ref, bytes):
        assert ours == ref, path
    else:
        assert type(ours) is type(ref), f"{path}: {type(ours)} != {type(ref)}"
        assert ours.dtype == ref.dtype and ours.shape == ref.shape, f"{path}: {ours.dtype}{ours.shape} != {ref.dtype}{ref.shape}"
        assert np.array_equal(ours, ref), f"{path}: values differ"


@pytest.mark.parametrize("decode_images", [False, True])
@pytest.mark.parametrize("split", ["train", "val", "train[:50%]", "train[1:-1]"])
def test_matches_tfds_on_our_data(tiny_rlds_dataset, split, decode_images):
    reader = RLDSReader(tiny_rlds_dataset)
    ours = list(reader.episodes(split, decode_images=decode_images))
    ref = _tfds_episodes(tiny_rlds_dataset, split, decode_images)
    assert len(ours) == len(ref) == reader.num_episodes(split) > 0
    for a, b in zip(ours, ref):
        _assert_same(a, b)


@pytest.mark.parametrize("decode_images", [False, True])
def test_matches_tfds_on_real_bridge_data(bridge_dataset_dir, decode_images):
    reader = RLDSReader(bridge_dataset_dir)
    ours = list(reader.episodes("train", decode_images=decode_images))
    ref = _tfds_episodes(bridge_dataset_dir, "train", decode_images)
    assert len(ours) == len(ref) == 25
    for a, b in zip(ours, ref):
        _assert_same(a, b)
    assert ours[0]["steps"]["language_embedding"].shape == (10, 512)
    assert reader.image_keys() == [f"steps/observation/image_{i}" for i in range(4)]


def test_selected_keys_and_random_access(tiny_rlds_dataset):
    reader = RLDSReader(tiny_rlds_dataset)
    refs = reader.episode_refs("train")
    full = list(reader.episodes("train"))
    ep = reader.read_episode(refs[3], keys={"steps/action", "steps/observation/image"})
    assert set(ep["steps"]) == {"action", "observation"} and set(ep["steps"]["observation"]) == {"image"}
    np.testing.assert_array_equal(ep["steps"]["action"], full[3]["steps"]["action"])


def _copy(src, tmp_path):
    dst = tmp_path / "copy" / src.parent.name / src.name
    shutil.copytree(src, dst)
    return dst


def test_missing_features_json(tiny_rlds_dataset, tmp_path):
    d = _copy(tiny_rlds_dataset, tmp_path)
    (d / "features.json").unlink()
    with pytest.raises(DatasetFormatError, match="features.json is missing"):
        RLDSReader(d)
    with pytest.raises(DatasetFormatError, match=r"use .*1\.0\.0"):  # the name folder instead of the version
        RLDSReader(tiny_rlds_dataset.parent)


def test_crc_mismatch_names_file_and_offset(tiny_rlds_dataset, tmp_path):
    d = _copy(tiny_rlds_dataset, tmp_path)
    shard = sorted(d.glob("*-train.tfrecord-*"))[1]
    offset, length = index_records(shard)[1]
    raw = bytearray(shard.read_bytes())
    raw[offset + 12 + length // 2] ^= 0x01  # one bit inside the second episode's data
    shard.write_bytes(bytes(raw))
    reader = RLDSReader(d)
    with pytest.raises(TFRecordError, match=rf"{shard.name}.*CRC mismatch.*byte offset {offset}"):
        list(reader.episodes("train"))
    # the header of the length field is checked too
    raw = bytearray(shard.read_bytes())
    raw[offset + 1] ^= 0x01
    shard.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=rf"CRC mismatch in the record length at byte offset {offset}"):
        list(RLDSReader(d).episodes("train"))


def test_truncated_shard_names_file_and_offset(tiny_rlds_dataset, tmp_path):
    d = _copy(tiny_rlds_dataset, tmp_path)
    shard = sorted(d.glob("*-train.tfrecord-*"))[2]
    offset, _ = index_records(shard)[1]
    shard.write_bytes(shard.read_bytes()[: offset + 100])
    with pytest.raises(TFRecordError, match=rf"{shard.name}: truncated record at byte offset {offset}"):
        list(RLDSReader(d).episodes("train"))
    shard.write_bytes(shard.read_bytes()[: offset + 5])
    with pytest.raises(TFRecordError, match="truncated record header"):
        list(iter_records(shard))


def test_unknown_split_missing_shard_and_wrong_key(tiny_rlds_dataset, bridge_dataset_dir):
    reader = RLDSReader(tiny_rlds_dataset)
    with pytest.raises(KeyError, match=r"split 'test' not in .*available splits: \['train', 'val'\]"):
        list(reader.episodes("test"))
    with pytest.raises(KeyError, match=r"image features: \['steps/observation/image', 'steps/observation/wrist_image'\]"):
        reader.read_episode(reader.episode_refs("train")[0], keys={"steps/observation/image_0"})
    # bridge lists a `val` split whose shard is not shipped
    with pytest.raises(FileNotFoundError, match=r"bridge_dataset-val.tfrecord-00000-of-00001.*missing.*\['train'\]"):
        RLDSReader(bridge_dataset_dir).episode_refs("val")


def test_stale_metadata_and_bad_record(tiny_rlds_dataset, tmp_path):
    d = _copy(tiny_rlds_dataset, tmp_path)
    shard = sorted(d.glob("*-train.tfrecord-*"))[0]
    records = list(iter_records(shard))
    write_records(shard, records[:1])  # valid framing, one episode fewer than dataset_info.json says
    with pytest.raises(DatasetFormatError, match="holds 1 episodes, dataset_info.json says 2"):
        RLDSReader(d).episode_refs("train")
    write_records(shard, [records[0][:-7], records[1]])  # valid CRCs around a cut tf.Example
    with pytest.raises(DatasetFormatError, match=rf"{shard.name}: episode at byte offset 0"):
        list(RLDSReader(d).episodes("train"))


def test_parse_example_matches_protobuf(tiny_rlds_dataset):
    """Our wire decoder against the protobuf library's own parse of the same record."""
    tf_example = pytest.importorskip("tensorflow").train.Example
    shard = sorted(tiny_rlds_dataset.glob("*-train.tfrecord-*"))[0]
    record = next(iter_records(shard))
    ours = parse_example(record)
    msg = tf_example.FromString(record)
    assert set(ours) == set(msg.features.feature)
    for key, feat in msg.features.feature.items():
        kind = feat.WhichOneof("kind")
        values = list(getattr(feat, kind).value)
        if kind == "bytes_list":
            assert ours[key] == values, key
        else:
            np.testing.assert_array_equal(ours[key], np.array(values, ours[key].dtype), err_msg=key)


def test_reader_does_not_import_tensorflow(tiny_rlds_dataset, bridge_dataset_dir):
    code = textwrap.dedent(f"""
        import sys
        from vla.data.rlds_reader import RLDSReader
        for d in ({str(tiny_rlds_dataset)!r}, {str(bridge_dataset_dir)!r}):
            n = sum(1 for _ in RLDSReader(d).episodes("train", decode_images=True))
            assert n > 0
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_datasets", "keras"))
        assert not bad, bad
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_dataset_info_split_counts(tiny_rlds_dataset):
    reader = RLDSReader(tiny_rlds_dataset)
    assert reader.splits == {"train": 6, "val": 2}
    assert reader.num_episodes("train[:50%]") == 3
    info = json.loads((tiny_rlds_dataset / "dataset_info.json").read_text())
    assert reader.info == info
