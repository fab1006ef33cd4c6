"""The state success head: success judged from the predicted next state alone."""

import json

import numpy as np
import pytest
import torch

from test_world_model_units import MICRO, _stats
from world_model.config import WorldModelConfig
from world_model.fast_step import FastStep
from world_model.model import META, RolloutState, WorldModel


def _model(**over) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(WorldModelConfig(**{**MICRO, "success_head": "state", **over}), proprio_dim=4,
                      statistics=_stats(), source_image_size=(48, 48)).eval()


def _inputs(model, b=2, s=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, d = model.dynamics.num_tokens, model.config.token_dim
    return torch.randn(b, s, n, d, generator=g), torch.randn(b, s, 4, generator=g), torch.randn(b, s, 7, generator=g)


@pytest.mark.parametrize("dynamics", ["transformer", "conv"])
def test_success_reads_the_predicted_state_only(dynamics):
    model = _model(dynamics=dynamics)
    torch.nn.init.normal_(model.dynamics.state_success.net[-1].weight)  # a non-trivial head
    lat, prop, act = _inputs(model)
    out = model.dynamics(lat, prop, act)
    expected = model.dynamics.state_success(out["latents"], out["proprio"])
    torch.testing.assert_close(out["success_logit"], expected)
    # Detached: the success loss trains the head, never the dynamics' predictions.
    model.train()
    model.zero_grad()
    model.dynamics(lat, prop, act)["success_logit"].sum().backward()
    head = {id(p) for p in model.dynamics.state_success.parameters()}
    grads = [p for p in model.dynamics.parameters() if id(p) not in head and p.grad is not None and p.grad.abs().sum() > 0]
    assert not grads, "the success loss reached the dynamics"
    assert all(p.grad is not None for p in model.dynamics.state_success.parameters())


def test_state_head_saves_loads_and_fast_step_matches(tmp_path):
    model = _model()
    torch.nn.init.normal_(model.dynamics.state_success.net[-1].weight)
    model.save(tmp_path / "wm")
    loaded = WorldModel.load(tmp_path / "wm")
    assert loaded.config.success_head == "state"
    lat, prop, act = _inputs(model, b=1, s=MICRO["history"])
    state = RolloutState(lat, prop, act, 0)
    a = np.array([[0.01, -0.02, 0.0, 0.0, 0.0, 0.0, 1.0]], np.float32)
    _, ref = loaded.step(state, a)
    _, out, _ = FastStep(loaded)(state, a)
    np.testing.assert_allclose(out.success_prob, ref.success_prob, atol=1e-5)


def test_checkpoints_without_the_option_load_with_the_features_head(tmp_path):
    model = WorldModel(WorldModelConfig(**MICRO), proprio_dim=4, statistics=_stats(), source_image_size=(48, 48))
    model.save(tmp_path / "wm")
    meta = json.loads((tmp_path / "wm" / META).read_text())
    del meta["config"]["success_head"]
    (tmp_path / "wm" / META).write_text(json.dumps(meta))
    assert WorldModel.load(tmp_path / "wm").config.success_head == "features"


def test_wrong_value_is_a_clear_error():
    with pytest.raises(ValueError, match="success_head='pixels'.*features, state, lowdim or objects"):
        WorldModelConfig(success_head="pixels")
