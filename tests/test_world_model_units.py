"""Fast unit tests of the world model's parts (no training): decoders, proprio conditioning, action FiLM,
batched decoding, and loading a checkpoint of the first format."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla.core.statistics import ArrayStatistics, DatasetStatistics
from world_model.config import WorldModelConfig
from world_model.encoder import FrameAutoencoder
from world_model.model import META, RolloutState, WorldModel

MICRO = dict(cameras=["primary", "wrist"], image_size=32, enc_channels=[8, 16, 16], latent_channels=8, patch=4,
             history=2, dim=32, depth=1, heads=4)


def _stats(p: int = 4) -> DatasetStatistics:
    rng = np.random.default_rng(0)
    mask = np.ones(7, bool)
    mask[6] = False
    return DatasetStatistics(action=ArrayStatistics.compute(rng.uniform(-0.05, 0.05, (50, 7)).astype(np.float32), mask=mask),
                             proprio=ArrayStatistics.compute(rng.uniform(-1, 1, (50, p)).astype(np.float32)),
                             num_transitions=50, num_trajectories=5)


def _model(**over) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(WorldModelConfig(**{**MICRO, **over}), proprio_dim=4, statistics=_stats(),
                      source_image_size=(48, 48)).eval()


@pytest.mark.parametrize("decoder", ["shuffle", "conv"])
def test_decoders_invert_the_encoder_shape(decoder):
    ae = FrameAutoencoder([8, 16, 16], 8, 2, decoder=decoder, dec_channels=32)
    x = torch.rand(3, 3, 32, 32)
    z = ae.encode(x)
    assert z.shape == (3, 8, 4, 4)
    assert ae.decode(z, torch.tensor([0, 1, 0])).shape == (3, 3, 32, 32)
    with pytest.raises(ValueError, match="shuffle or conv"):
        WorldModelConfig(**{**MICRO, "decoder": "deconv"})


def test_decode_batches_cameras_and_resizes():
    m = _model()
    tokens = torch.randn(2, 2 * m.config.tokens_per_camera, m.config.token_dim)
    out = m.decode(tokens, size=(48, 48))
    assert set(out) == {"primary", "wrist"} and out["primary"].shape == (2, 48, 48, 3) and out["wrist"].dtype == np.uint8
    # The one batched decoder call equals decoding each camera on its own.
    maps = m._to_maps(tokens)
    with torch.no_grad():
        wrist = m.autoencoder.decode(maps[:, 1], torch.ones(2, dtype=torch.long)).clamp(0, 1)
    assert np.abs(m.decode(tokens)["wrist"].astype(int) - (wrist * 255).round().byte().permute(0, 2, 3, 1).numpy()).max() <= 1


def test_proprio_decoder_needs_and_uses_proprio():
    m = _model(proprio_decoder=True)
    with torch.no_grad():
        m.autoencoder.proprio_map[-1].weight.normal_(0, 0.5)
    tokens = torch.randn(1, 2 * m.config.tokens_per_camera, m.config.token_dim)
    with pytest.raises(ValueError, match="conditioned on proprio"):
        m.decode(tokens)
    a = m.decode(tokens, proprio=np.zeros((1, 4), np.float32))["primary"]
    b = m.decode(tokens, proprio=np.ones((1, 4), np.float32))["primary"]
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0


def _state(m: WorldModel) -> RolloutState:
    h, n, d = m.config.history, 2 * m.config.tokens_per_camera, m.config.token_dim
    g = torch.Generator().manual_seed(1)
    return RolloutState(torch.randn(1, h, n, d, generator=g), torch.zeros(1, h, 4), torch.zeros(1, h, 7), pad=0)


def test_action_film_conditions_every_latent_token():
    m = _model(action_film=True)
    state = _state(m)
    a0, a1 = np.zeros((1, 7), np.float32), np.full((1, 7), 0.05, np.float32)
    # Zero-initialised: a fresh model's FiLM is the identity ...
    with torch.no_grad():
        x = m.dynamics.action_film(torch.from_numpy(a1))
    assert torch.count_nonzero(x) == 0
    # ... and once it has weights, the action reaches every latent token's input directly.
    with torch.no_grad():
        m.dynamics.action_film[-1].weight.normal_(0, 0.5)
        m.dynamics.latent_out.weight.normal_(0, 0.1)
    z0 = m.step(state, a0)[1].latents
    z1 = m.step(state, a1)[1].latents
    assert ((z0 - z1).abs().mean(-1) > 1e-4).all()  # every token's prediction changed


def test_first_format_checkpoint_loads_with_conv_decoder(tmp_path):
    old = _model(decoder="conv", action_film=False)
    old.save(tmp_path)
    meta = json.loads((tmp_path / META).read_text())
    for k in ("decoder", "action_film", "proprio_decoder", "dec_channels", "dec_blocks"):
        meta["config"].pop(k)
    meta["format"] = 1
    (tmp_path / META).write_text(json.dumps(meta))
    m = WorldModel.load(tmp_path)
    assert m.config.decoder == "conv" and not m.config.action_film and not m.config.proprio_decoder
    tokens = torch.randn(1, 2 * m.config.tokens_per_camera, m.config.token_dim)
    np.testing.assert_array_equal(m.decode(tokens)["primary"], old.decode(tokens)["primary"])
