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


@pytest.mark.parametrize("conditioning", ["map", "field"])
def test_proprio_decoder_needs_and_uses_proprio(conditioning):
    m = _model(proprio_decoder=True, proprio_conditioning=conditioning)
    with torch.no_grad():
        head = m.autoencoder.proprio_map if conditioning == "map" else m.autoencoder.proprio_field.mlp
        head[-1].weight.normal_(0, 0.5)
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


@pytest.mark.parametrize("conditioning,dynamics", [("", "transformer"), ("map", "transformer"), ("field", "conv")])
def test_fast_step_equals_step_plus_decode(conditioning, dynamics):
    from world_model.fast_step import FastStep

    m = _model(proprio_decoder=bool(conditioning), proprio_conditioning=conditioning or "map", dynamics=dynamics)
    for p in m.dynamics.parameters():  # non-trivial dynamics (the latent head is zero-initialised)
        p.data.add_(0.05 * torch.randn_like(p))
    h, n, d = m.config.history, m.dynamics.num_tokens, m.config.token_dim
    state = RolloutState(torch.randn(1, h, n, d), torch.randn(1, h, 4) * 0.3, torch.zeros(1, h, 7), pad=h - 1)
    action = np.array([[0.02, -0.01, 0.03, 0, 0, 0, 1.0]], np.float32)
    fast = FastStep(m, size=(48, 48), trace=True)
    assert fast.traced
    ref_state, ref_out = m.step(state, action)
    ref_frames = m.decode(ref_out.latents, size=(48, 48), proprio=ref_out.norm_proprio)
    for _ in range(2):  # twice: the frozen graph must not keep state between calls
        new_state, out, frames = fast(state, action)
        torch.testing.assert_close(new_state.latents, ref_state.latents, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(new_state.action, ref_state.action)
        assert new_state.pad == ref_state.pad
        np.testing.assert_allclose(out.proprio, ref_out.proprio, atol=1e-4)
        np.testing.assert_allclose(out.success_prob, ref_out.success_prob, atol=1e-5)
        for c in m.cameras:
            assert frames[c].shape == (1, 48, 48, 3) and frames[c].dtype == np.uint8
            assert np.abs(frames[c].astype(int) - ref_frames[c].astype(int)).max() <= 1
    # Another batch size than traced falls back to the eager graph, with the same result.
    b2 = RolloutState(state.latents.repeat(2, 1, 1, 1), state.proprio.repeat(2, 1, 1), state.action.repeat(2, 1, 1), state.pad)
    _, out2, frames2 = fast(b2, np.repeat(action, 2, 0))
    assert frames2["primary"].shape == (2, 48, 48, 3)
    np.testing.assert_allclose(out2.proprio[0], ref_out.proprio[0], atol=1e-4)


def test_latent_swap_batch_takes_the_input_frame_from_the_same_episode():
    from vla.core.episode import EpisodeMetadata
    from world_model.data import WMEpisode
    from world_model.train import _frames_batch

    eps = []
    for e in range(3):  # every frame is filled with its episode index, so the source episode is visible
        frames = {c: np.full((6, 8, 8, 3), e * 40 + t, np.uint8) for c in ("primary", "wrist") for t in [0]}
        for c in frames:
            frames[c] += np.arange(6, dtype=np.uint8)[:, None, None, None]  # ... and the step
        eps.append(WMEpisode(frames=frames, proprio=np.zeros((6, 4), np.float32), action=np.zeros((6, 7), np.float32),
                             success=np.zeros(6, np.float32), instruction="", source_size=(8, 8),
                             metadata=EpisodeMetadata(episode_id=str(e), seed=e)))
    rng = np.random.default_rng(0)
    x, cam, prop, src = _frames_batch(eps, ["primary", "wrist"], 200, rng, lambda p: p, swap_prob=0.5)
    target, inp = (x[:, 0, 0, 0] * 255).round().long(), (src[:, 0, 0, 0] * 255).round().long()
    assert torch.equal(target // 40, inp // 40)  # always the same episode
    swapped = (target != inp).float().mean().item()
    assert 0.25 < swapped < 0.6  # about half (a swap may draw the same step)
    assert len(_frames_batch(eps, ["primary", "wrist"], 4, rng, lambda p: p)) == 3  # no swap: no input frames


def test_conv_dynamics_shapes_causality_and_last_only():
    m = _model(dynamics="conv", conv_channels=16, conv_blocks=2)
    d = m.dynamics
    with torch.no_grad():
        d.out.weight.normal_(0, 0.1)  # zero-initialised: make the latent output depend on the input
        h, n, dim = m.config.history, d.num_tokens, m.config.token_dim
        z, p, a = torch.randn(3, h, n, dim), torch.randn(3, h, 4), torch.randn(3, h, 7)
        out = d(z, p, a)
        assert out["latents"].shape == (3, h, n, dim) and out["proprio"].shape == (3, h, 4)
        assert out["success_logit"].shape == (3, h) and out["reward"].shape == (3, h)
        last = d(z, p, a, last_only=True)
        torch.testing.assert_close(last["latents"][:, -1], out["latents"][:, -1])
        torch.testing.assert_close(last["proprio"][:, -1], out["proprio"][:, -1])
        # Position 0 sees step 0 only: changing the last step leaves it unchanged, but changes the last position.
        z2 = z.clone()
        z2[:, -1] += 1.0
        out2 = d(z2, p, a)
        torch.testing.assert_close(out2["latents"][:, 0], out["latents"][:, 0])
        assert (out2["latents"][:, -1] - out["latents"][:, -1]).abs().max() > 1e-3
        # The token <-> map layout is the model's own.
        maps = torch.randn(2, len(m.cameras), m.config.latent_channels, m.config.latent_grid, m.config.latent_grid)
        torch.testing.assert_close(d._maps(d._tokens(maps)), maps)
        torch.testing.assert_close(d._maps(m._to_tokens(maps)), (maps - m.latent_mean[:, None, None]) / m.latent_std[:, None, None])
    with pytest.raises(ValueError, match="transformer or conv"):
        WorldModelConfig(**{**MICRO, "dynamics": "rnn"})


def _episodes(n: int, length, image_size: int = 32, seed: int = 0):
    """Small random WMEpisodes (frames at the model's size); the last step of odd ones is a success."""
    from vla.core.episode import EpisodeMetadata
    from world_model.data import WMEpisode

    rng = np.random.default_rng(seed)
    eps = []
    for e in range(n):
        t = length[e] if isinstance(length, (list, tuple)) else length
        success = np.zeros(t, np.float32)
        success[-1] = float(e % 2)
        eps.append(WMEpisode(frames={c: rng.integers(0, 255, (t, image_size, image_size, 3), np.uint8)
                                     for c in ("primary", "wrist")},
                             proprio=rng.uniform(-1, 1, (t, 4)).astype(np.float32),
                             action=rng.uniform(-0.05, 0.05, (t, 7)).astype(np.float32), success=success, instruction="",
                             source_size=(48, 48), metadata=EpisodeMetadata(episode_id=str(e), success=bool(e % 2), seed=e)))
    return eps


@pytest.mark.parametrize("dynamics", ["transformer", "conv"])
def test_rollout_heads_score_proprio_and_success_on_predicted_steps(dynamics):
    from world_model.data import sample_windows
    from world_model.losses import dynamics_loss

    m = _model(dynamics=dynamics, conv_channels=16, conv_blocks=2)
    eps = _episodes(3, 12)
    m.prepare(eps)
    batch = sample_windows(eps, 8, m.config.history, 4, np.random.default_rng(0))
    _, plain = dynamics_loss(m, batch, rollout_steps=4, context_noise=0.0)
    assert plain["rollout_proprio"] == 0.0 and plain["rollout_success"] == 0.0
    loss, parts = dynamics_loss(m, batch, rollout_steps=4, context_noise=0.0, rollout_heads=True)
    assert parts["rollout_proprio"] > 0 and parts["rollout_success"] > 0
    # Those terms reach the success head through the rollout alone (the teacher-forced terms are the same).
    head = m.dynamics.success_out if dynamics == "transformer" else m.dynamics.head[-1]
    m.zero_grad()
    loss.backward()
    with_heads = head.weight.grad.clone()
    m.zero_grad()
    dynamics_loss(m, batch, rollout_steps=4, context_noise=0.0)[0].backward()
    assert (with_heads - head.weight.grad).abs().max() > 0


def test_each_model_encodes_shared_episodes_itself():
    """Episodes cache latents, but only for the model that encoded them: an ensemble's members (or two
    checkpoints) evaluated on the same episodes must not read each other's latent spaces."""
    a = _model()
    torch.manual_seed(1)
    b = WorldModel(a.config, proprio_dim=4, statistics=_stats(), source_image_size=(48, 48)).eval()
    eps = _episodes(2, [6, 7])
    a.prepare(eps)
    mine = eps[0].latents.copy()
    b.prepare(eps)
    assert not np.allclose(eps[0].latents, mine)
    np.testing.assert_allclose(eps[0].latents, b.encode(eps[0].frames).numpy(), atol=1e-6)
    cached = eps[1].latents
    b.prepare(eps)  # same model, same weights: the cache is used
    assert eps[1].latents is cached
    s = a.start_state(eps[0], 3)  # back to the first model: encoded again with its own encoder
    np.testing.assert_allclose(s.latents[0, -1].numpy(), mine[3], atol=1e-6)
    with torch.no_grad():  # new encoder weights invalidate the cache too
        next(a.autoencoder.encoder.parameters()).add_(0.1)
    a.prepare(eps)
    assert not np.allclose(eps[0].latents, mine)


def test_long_horizon_open_loop_scores_proprio_and_success():
    from world_model.evaluate import evaluate_long_horizon

    m = _model(dynamics="conv", conv_channels=16, conv_blocks=2)
    eps = _episodes(4, [6, 9, 12, 9])
    out = evaluate_long_horizon(m, eps, horizon=10)
    assert out["horizon"] == 10 and out["num_episodes"] == 4 and out["recorded_successes"] == 2
    # A state after action r (1-based) exists while r <= length - 1.
    assert out["episodes_per_step"] == [4, 4, 4, 4, 4, 3, 3, 3, 1, 1]
    assert len(out["position_error"]) == 10 and all(v >= 0 for v in out["position_error"])
    assert out["position_error_h10"] == out["position_error"][-1]
    # A success head that always fires: every failed episode is a false positive, agreement = success share.
    with torch.no_grad():
        m.dynamics.head[-1].bias[-2] = 100.0
    fire = evaluate_long_horizon(m, eps, horizon=10)
    assert fire["success_false_positives"] == 2 and fire["success_false_negatives"] == 0
    assert fire["success_agreement"] == 0.5 and fire["success_step_error"] > 0
    assert fire["imagined_success"] == [True] * 4 and sum(fire["recorded_success"]) == 2
    with torch.no_grad():
        m.dynamics.head[-1].bias[-2] = -100.0
    never = evaluate_long_horizon(m, eps, horizon=10)
    assert never["success_false_negatives"] == 2 and never["success_false_positives"] == 0


def test_squareworld_runs_on_after_success_with_per_step_labels():
    from world_model.toy import collect_episodes

    stop = collect_episodes(2, seed=0, image_size=64, max_steps=30)
    run_on = collect_episodes(2, seed=0, image_size=64, max_steps=30, terminate_on_success=False)
    for a, b in zip(stop, run_on):
        assert a.metadata.success and b.metadata.success  # seeds 0 and 1: the servo solves them
        t = len(a.action)  # stops at its first solved step ...
        assert t < 30 and a.reward[-1] == 1 and a.reward[:-1].sum() == 0
        # ... where the run-on episode is the same so far, then holds the solved state to the step limit.
        assert len(b.action) == 30 and np.array_equal(a.action, b.action[:t]) and np.array_equal(a.reward, b.reward[:t])
        assert b.reward[t - 1 :].mean() > 0.5


def test_world_model_policy_specs_use_the_shared_grammar():
    """`servo` is a kind of vla's registry once world_model is imported; the common options (noise, blank_images,
    name, seed) wrap it; `random` without scale moves +-0.05 m without rotating, as SquareWorld's range."""
    from vla.core.types import Observation
    from vla.policy import PolicySpecError, make_policy
    from vla.policy.wrappers import BlankImagesPolicy, NoisyPolicy
    from world_model.policies import policy_context
    from world_model.toy import SquareWorldEnv, VisualServoPolicy

    name, servo = make_policy("servo:gain=0.3;bias=0.01", policy_context(5))
    assert name == "servo:gain=0.3;bias=0.01" and isinstance(servo, VisualServoPolicy)
    assert (servo.gain, servo.bias, servo._seed) == (0.3, 0.01, 5)
    name, wrapped = make_policy("servo:noise=0.02,blank_images=1,name=blind", policy_context())
    assert name == "blind" and isinstance(wrapped, NoisyPolicy) and isinstance(wrapped.base, BlankImagesPolicy)
    with pytest.raises(PolicySpecError, match="did you mean 'gain'"):
        make_policy("servo:gian=0.3", policy_context())
    _, rnd = make_policy("random", policy_context(3))
    env = SquareWorldEnv(image_size=16)
    obs, info = env.reset(seed=0)
    rnd.reset(info["instruction"])
    acts = np.stack([rnd.act(Observation({"primary": obs["primary"]}, obs["proprio"], "")) for _ in range(50)])
    assert np.abs(acts[:, :3]).max() <= 0.05 and acts[:, :3].std() > 0.01 and not acts[:, 3:6].any()
    assert set(acts[:, 6]) == {0.0, 1.0}


def test_chunks_run_open_loop_in_imagination_and_on_the_interactive_page():
    """A chunked policy is asked once per chunk (one `ActionQueue` per rollout); on the page a manual step
    drops what is left of the chunk, so the next policy step asks again."""
    from vla.core.types import Observation, Policy
    from world_model.imagine import imagine
    from world_model.viz.server import Session

    class Chunks(Policy):
        chunk_size = 3

        def __init__(self):
            self.calls = 0

        def act(self, observation: Observation) -> np.ndarray:
            self.calls += 1
            chunk = np.zeros((3, 7), np.float32)
            chunk[:, 0] = [0.01 * self.calls, 0.02 * self.calls, 0.03 * self.calls]
            return chunk

    m = _model()
    eps = _episodes(1, 8)
    policy = Chunks()
    traj = imagine(m, policy, (eps[0], 2), "", horizon=7, stop_on_success=False)
    assert policy.calls == 3 and np.allclose(traj.actions[:4, 0], [0.01, 0.02, 0.03, 0.02])
    page = Session(m, eps, Chunks(), "chunks")
    page.start(0, 2)
    xs = [page.step(use_policy=True)["action"][0] for _ in range(2)]
    page.step(action=[0, 0, 0, 0, 0, 0, 1])
    xs.append(page.step(use_policy=True)["action"][0])
    assert xs == [0.01, 0.02, 0.02] and page.policy.calls == 2


def test_bfloat16_imagination_stays_close_to_float32_and_keeps_a_float32_state():
    from world_model.fast_step import FastStep
    from world_model.imagine import fast_step

    m = _model(dynamics="conv")
    for p in m.dynamics.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    h, n, d = m.config.history, m.dynamics.num_tokens, m.config.token_dim
    state = RolloutState(torch.randn(4, h, n, d), torch.randn(4, h, 4) * 0.3, torch.zeros(4, h, 7), pad=h - 1)
    action = np.tile(np.array([[0.02, -0.01, 0.03, 0, 0, 0, 1.0]], np.float32), (4, 1))
    ref_state, ref_out, ref_frames = FastStep(m, size=(48, 48))(state, action)
    new_state, out, frames = FastStep(m, size=(48, 48), precision="bfloat16")(state, action)
    assert new_state.latents.dtype == new_state.proprio.dtype == torch.float32
    # bfloat16 keeps ~3 significant digits: latents of a few units move by hundredths, frames by a few levels
    torch.testing.assert_close(new_state.latents, ref_state.latents, atol=0.1, rtol=0.02)
    np.testing.assert_allclose(out.success_prob, ref_out.success_prob, atol=0.02)
    assert np.abs(frames["primary"].astype(int) - ref_frames["primary"].astype(int)).max() <= 12
    assert not np.array_equal(new_state.latents.numpy(), ref_state.latents.numpy())  # it did run in bfloat16
    # the model's setting selects it for imagine / imagine_batch / compare_policies
    assert fast_step(m, (48, 48)).dynamics_eager.bfloat16 is False
    m.set_imagination_precision("bfloat16")
    assert fast_step(m, (48, 48)).dynamics_eager.bfloat16 is True
    with pytest.raises(ValueError, match="one of \\['float32', 'bfloat16'\\], got 'fp8'"):
        m.set_imagination_precision("fp8")
