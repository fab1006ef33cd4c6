"""How far to trust an imagined rollout: actions outside the range the world model was trained on."""

import numpy as np

from test_world_model_units import _model
from vla.core.types import Observation, Policy
from world_model.imagine import imagine


class _Fixed(Policy):
    def __init__(self, actions):
        self.actions, self.t = np.asarray(actions, np.float32), 0

    def reset(self, instruction: str) -> None:
        self.t = 0

    def act(self, observation: Observation) -> np.ndarray:
        a = self.actions[min(self.t, len(self.actions) - 1)]
        self.t += 1
        return a


def test_actions_in_range_follows_the_training_actions():
    model = _model()  # actions of its statistics: uniform in [-0.05, 0.05] on every dimension
    st = model.statistics.action
    inside = (st.min + st.max) / 2
    far = inside.copy()
    far[2] = st.max[2] + 0.5 * (st.max[2] - st.min[2])
    edge = inside.copy()
    edge[0] = st.max[0] + 0.01 * (st.max[0] - st.min[0])  # within the 5% margin
    np.testing.assert_array_equal(model.actions_in_range(np.stack([inside, far, edge])), [True, False, True])


def test_imagine_flags_steps_whose_action_no_training_data_covers():
    model = _model()
    st = model.statistics.action
    ok = ((st.min + st.max) / 2).astype(np.float32)
    out = ok.copy()
    out[1] = st.max[1] + 0.03
    obs = Observation(images={c: np.zeros((48, 48, 3), np.uint8) for c in model.cameras}, proprio=np.zeros(4, np.float32),
                      instruction="lift")
    traj = imagine(model, _Fixed([ok, ok, out, ok]), obs, "lift", horizon=4, stop_on_success=False)
    np.testing.assert_array_equal(traj.action_in_range, [True, True, False, True])
    assert traj.out_of_range_fraction == 0.25
    assert any("1 of 4 actions (first at step 2)" in w and "extrapolation" in w for w in traj.warnings)
    clean = imagine(model, _Fixed([ok] * 4), obs, "lift", horizon=4, stop_on_success=False)
    assert clean.action_in_range.all() and clean.out_of_range_fraction == 0.0
    assert not any("outside the range" in w for w in clean.warnings)
