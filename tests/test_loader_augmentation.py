"""The numpy image ops match the TensorFlow ops OpenVLA's pipeline uses (same parameters, +-1 grey level)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla.data.augmentation import AugmentationConfig, augment, center_crop, resize_image, sample_params
from vla.data.synthetic import make_episode

tf = pytest.importorskip("tensorflow")


def _image(size=(48, 40)):
    return make_episode(3, num_steps=1, image_size=size).images["primary"][0]


def _close(ours: np.ndarray, ref: np.ndarray) -> None:
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())  # float rounding only


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_augment_matches_tf_ops(seed):
    img = _image()
    p = sample_params(np.random.default_rng(seed), AugmentationConfig(diagonal_crop=False))
    x = tf.image.convert_image_dtype(tf.constant(img), tf.float32)
    y = tf.clip_by_value(tf.image.crop_and_resize(x[None], [list(p.box)], [0], img.shape[:2])[0], 0, 1)
    y = tf.clip_by_value(tf.image.adjust_brightness(y, p.brightness), 0, 1)
    y = tf.clip_by_value(tf.image.adjust_contrast(y, p.contrast), 0, 1)
    y = tf.clip_by_value(tf.image.adjust_saturation(y, p.saturation), 0, 1)
    y = tf.clip_by_value(tf.image.adjust_hue(y, p.hue), 0, 1)
    _close(augment(img, p), tf.image.convert_image_dtype(y, tf.uint8).numpy())


def test_sampled_ranges_and_reference_diagonal_crop():
    cfg = AugmentationConfig()
    for seed in range(50):
        p = sample_params(np.random.default_rng(seed), cfg)
        y1, x1, y2, x2 = p.box
        assert math.isclose((y2 - y1) * (x2 - x1), 0.9, rel_tol=1e-9) and y1 == x1  # dlimp reuses one draw
        assert abs(p.brightness) <= 0.2 and 0.8 <= p.contrast <= 1.2 and 0.8 <= p.saturation <= 1.2
        assert abs(p.hue) <= 0.05


def test_center_crop_matches_openvla_eval():
    img = _image((40, 40))
    side = math.sqrt(0.9)
    lo = (1 - side) / 2
    x = tf.image.convert_image_dtype(tf.constant(img), tf.float32)
    y = tf.clip_by_value(tf.image.crop_and_resize(x[None], [[lo, lo, lo + side, lo + side]], [0], (40, 40))[0], 0, 1)
    _close(center_crop(img, 0.9), tf.image.convert_image_dtype(y, tf.uint8, saturate=True).numpy())


@pytest.mark.parametrize("src,dst", [((64, 64), (48, 48)), ((30, 50), (40, 40)), ((40, 40), (40, 40))])
def test_resize_matches_dlimp_lanczos3(src, dst):
    img = _image(src)
    ref = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(img, dst, method="lanczos3", antialias=True)), 0, 255), tf.uint8)
    _close(resize_image(img, dst), ref.numpy())


@pytest.mark.parametrize("seed", [3, 4])
def test_fused_pass_at_training_size_writes_into_out(seed):
    """224x224 frames with the reference's diagonal crop, written into a slot of a batch (the loader's path)."""
    img = _image((224, 224))
    p = sample_params(np.random.default_rng(seed), AugmentationConfig())
    x = tf.image.convert_image_dtype(tf.constant(img), tf.float32)
    y = tf.clip_by_value(tf.image.crop_and_resize(x[None], [list(p.box)], [0], (224, 224))[0], 0, 1)
    for op, arg in ((tf.image.adjust_brightness, p.brightness), (tf.image.adjust_contrast, p.contrast),
                    (tf.image.adjust_saturation, p.saturation), (tf.image.adjust_hue, p.hue)):
        y = tf.clip_by_value(op(y, arg), 0, 1)
    batch = np.zeros((2, 224, 224, 3), np.uint8)
    assert np.shares_memory(augment(img, p, out=batch[1]), batch[1])
    _close(batch[1], tf.image.convert_image_dtype(y, tf.uint8).numpy())
    assert not batch[0].any()


def test_fused_pass_rejects_non_rgb_uint8():
    with pytest.raises(ValueError, match="uint8 \\(H, W, 3\\)"):
        augment(np.zeros((8, 8, 3), np.float32), sample_params(np.random.default_rng(0), AugmentationConfig()))
