"""The policy-judge visualizer's pieces on constructed data (no model): the divergence rule, the ranking's
intervals and chart, the per-camera side-by-side frames, and the results file round trip with ensemble members."""

from __future__ import annotations

import numpy as np
import pytest

from vla.core.intervals import wilson_interval
from world_model.results_io import load_results, save_results
from world_model.viz.divergence import divergence, divergence_step, step_errors
from world_model.viz.judge import (judge_html, ranking_plot, ranking_rows, rollout_videos_html, side_by_side,
                                   wilson_bounds)

SIZE = 16


def _scene(xs: list[int], size: int = SIZE) -> np.ndarray:
    """A grey table with a 4x4 red square at column x per step: uint8 (T + 1, size, size, 3)."""
    frames = np.full((len(xs), size, size, 3), 120, np.uint8)
    for t, x in enumerate(xs):
        frames[t, 6:10, x : x + 4] = (220, 30, 30)
    return frames


def _noisy(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """What a decoder gives back: the frames plus pixel noise (the start frame stays exact, as in `imagine`)."""
    rng = np.random.default_rng(seed)
    out = np.clip(frames + rng.normal(0, sigma, frames.shape), 0, 255).astype(np.uint8)
    out[0] = frames[0]
    return out


def _both_cameras(frames: np.ndarray) -> dict[str, np.ndarray]:
    return {"primary": frames, "wrist": frames[:, ::-1].copy()}


def test_a_faithful_rollout_does_not_diverge():
    sim = _both_cameras(_scene([1, 2, 3, 4, 5, 6, 7]))
    model = {c: _noisy(f, 6.0) for c, f in sim.items()}
    d = divergence(sim, model)
    assert d.step is None and "no divergence" in d.reason
    assert d.errors[0] == 0.0 and len(d.errors) == 7
    assert d.errors.max() <= d.threshold


def test_divergence_is_the_first_step_of_a_lasting_gap():
    sim = _both_cameras(_scene([1, 2, 3, 4, 6, 8, 10, 12, 12]))
    model = {c: _noisy(f, 2.0, seed=1) for c, f in _both_cameras(_scene([1, 2, 3, 4, 4, 4, 4, 4, 4])).items()}
    assert divergence_step(sim, model) == 4  # the imagined square stops at step 4; noise alone stays below
    e = step_errors(sim, model)
    assert e[4] > 2 * e[1] and e[3] < 2 * e[1]


def test_one_bad_frame_is_not_a_divergence_but_a_lasting_one_is():
    xs = [1, 2, 3, 4, 5, 6, 7, 8]
    sim = {"primary": _scene(xs)}
    spike = _noisy(_scene(xs), 4.0)
    spike[3] = _scene([11])[0]  # one frame far off, the next ones back on track
    assert divergence_step(sim, {"primary": spike}) is None
    assert divergence_step(sim, {"primary": spike}, sustain=1) == 3
    last = _noisy(_scene(xs), 4.0)
    last[-1] = _scene([11])[0]  # off at the last step: no later step can bring it back within what was recorded
    assert divergence_step(sim, {"primary": last}) == 7


def test_an_episode_ending_earlier_in_one_rollout_is_a_divergence():
    sim = {"primary": _scene([1, 2, 3, 4, 5, 6, 7, 8, 9])}
    model = {"primary": _noisy(_scene([1, 2, 3, 4, 5]), 4.0)}  # imagined success after step 4, sim goes on
    d = divergence(sim, model)
    assert d.step == 5 and "imagined rollout ends after step 4" in d.reason
    assert (d.sim_steps, d.model_steps) == (8, 4)
    assert divergence_step(model, sim) == 5  # and the other way round


def test_a_model_lost_from_the_first_step_diverges_at_step_1():
    """Frames that show less of the scene than a flat grey one: the relative drift test alone would pass them."""
    sim = {"primary": _scene([1, 2, 3, 4, 5, 6])}
    rng = np.random.default_rng(0)
    junk = rng.integers(60, 200, sim["primary"].shape).astype(np.uint8)
    junk[0] = sim["primary"][0]
    d = divergence(sim, {"primary": junk})
    assert d.step == 1 and "a flat frame's" in d.reason
    assert divergence(sim, {"primary": _noisy(sim["primary"], 2.0)}).step is None


def test_different_verdicts_on_equally_long_rollouts_diverge_at_the_last_step():
    sim = {"primary": _scene([1, 2, 3, 4, 5])}
    model = {"primary": _noisy(sim["primary"], 2.0)}
    assert divergence_step(sim, model, successes=(True, True)) is None
    d = divergence(sim, model, successes=(True, False))
    assert d.step == 4 and "the sim judges the task solved at step 4" in d.reason
    assert "imagined rollout judges" in divergence(sim, model, successes=(False, True)).reason


def test_imagined_frames_at_another_size_are_compared_at_the_sim_size():
    sim = {"primary": _scene([1, 2, 3, 4, 5], size=32)}
    model = {"primary": _scene([1, 2, 3, 4, 5], size=16)}
    assert step_errors(sim, model).shape == (5,)


def test_divergence_rejects_bad_input_clearly():
    sim = {"primary": _scene([1, 2, 3])}
    with pytest.raises(ValueError, match="share none"):
        divergence(sim, {"wrist": _scene([1, 2, 3])})
    with pytest.raises(ValueError, match="different lengths"):
        divergence({"primary": _scene([1, 2, 3]), "wrist": _scene([1, 2])}, sim)
    with pytest.raises(ValueError, match="ratio >= 1"):
        divergence(sim, sim, ratio=0.5)


@pytest.mark.parametrize("k,n", [(0, 5), (1, 5), (3, 8), (8, 8), (13, 40)])
def test_wilson_bounds_equal_the_projects_interval_at_integer_counts(k, n):
    assert wilson_bounds(k / n, n) == pytest.approx(wilson_interval(k, n), abs=1e-9)


def _closed(ensemble: bool) -> dict:
    """A compare_policies-shaped result: three policies over 5 episodes (two members when `ensemble`)."""
    sims = {"good": [1, 1, 1, 1, 0], "bad": [0, 0, 0, 0, 0], "mid": [1, 0, 1, 0, 0]}
    members = {"good": [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], "bad": [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0]],
               "mid": [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]}
    policies = {}
    for name in ("bad", "mid", "good"):  # evaluation order differs from the ranking
        ms = [[bool(x) for x in m] for m in (members[name] if ensemble else members[name][:1])]
        votes = np.mean(ms, axis=0)
        p = {"sim": [bool(x) for x in sims[name]], "sim_success": float(np.mean(sims[name])),
             "model": [bool(v > 0.5) for v in votes], "model_success": float(np.mean(votes))}
        if ensemble:
            p |= {"member_model": ms, "member_success": [float(np.mean(m)) for m in ms], "votes": votes.tolist()}
        policies[name] = p
    return {"policies": policies} | ({"members": 2} if ensemble else {})


def test_ranking_sorts_by_sim_success_with_wilson_intervals():
    rows = ranking_rows(_closed(ensemble=False))
    assert [r["policy"] for r in rows] == ["good", "mid", "bad"]
    good = rows[0]
    assert good["episodes"] == 5 and good["members"] == []
    assert (good["sim"]["low"], good["sim"]["high"]) == pytest.approx(wilson_interval(4, 5))
    assert good["model"]["value"] == pytest.approx(0.6)
    assert (good["model"]["low"], good["model"]["high"]) == pytest.approx(wilson_interval(3, 5))


def test_ranking_of_an_ensemble_gives_each_member_and_the_mean():
    rows = ranking_rows(_closed(ensemble=True))
    good = next(r for r in rows if r["policy"] == "good")
    assert [m["value"] for m in good["members"]] == pytest.approx([0.6, 1.0])
    assert good["members"][1]["low"] == pytest.approx(wilson_interval(5, 5)[0])
    assert good["model"]["value"] == pytest.approx(0.8)
    assert good["model"]["low"] < 0.8 < good["model"]["high"] == pytest.approx(wilson_bounds(0.8, 5)[1])
    svg = ranking_plot(_closed(ensemble=True))
    assert svg.startswith("<svg") and "members" in svg and "good (n=5)" in svg


def _video(num_members: int) -> dict:
    sim = _both_cameras(_scene([1, 2, 3, 4, 5, 6]))
    mems = [{c: _noisy(f, 2.0, seed=k) for c, f in _both_cameras(_scene([1, 2, 3, 3, 3, 3][: 6 - k])).items()}
            for k in range(num_members)]
    return {"policy": "servo", "seed": 7, "sim": sim, "model": mems[0], "members": mems, "sim_success": True,
            "model_success": False, "member_success": [False] * num_members, "sim_steps": 5}


def test_side_by_side_marks_each_member_from_its_divergence_step():
    sim = _scene([1, 2, 3, 4, 5, 6])
    imagined = [_scene([1, 2, 3, 4, 5, 6]), _scene([1, 2, 3, 3])]
    out = side_by_side(sim, imagined, [None, 2], height=64)
    assert out.shape[0] == 6 and out.shape[2] == 3 * 64 + 2 * 4
    red = np.array([220, 30, 30])
    top_left = lambda t, panel: out[t, -64 + 1, panel * 68 + 1]  # noqa: E731 - a border pixel of a panel
    assert (top_left(2, 2) == red).all() and (top_left(5, 2) == red).all()
    assert not (top_left(1, 2) == red).all() and not (top_left(5, 1) == red).all()


def test_videos_html_has_one_image_per_camera_and_each_members_divergence():
    closed = {"videos": [_video(2), _video(1)]}
    page = rollout_videos_html(closed)
    assert page.count("<img") == 4 and page.count("data-camera='wrist'") == 2
    assert page.count("class='divergence'") == 3  # two members, then one model
    assert "member 1: <b>diverges at step 3</b>" in page and "imagined: <b>diverges at step 3</b>" in page
    assert "ranking" in judge_html(_closed(ensemble=False) | closed)
    unrecorded = {"policy": "x", "seed": 1, "sim": {}, "model": {}, "sim_success": False, "model_success": False}
    assert rollout_videos_html({"videos": [unrecorded, _video(1)]}).count("<img") == 2


def test_results_round_trip_keeps_every_member_and_camera(tmp_path):
    videos = [_video(3), _video(1)]
    res = {"closed_loop": {"policies": {}, "videos": videos, "members": 3}}
    path = save_results(res, tmp_path / "metrics.json")
    back = load_results(path)["closed_loop"]["videos"]
    assert len(back) == 2 and [len(v["members"]) for v in back] == [3, 1]
    for v, orig in zip(back, videos):
        assert v["member_success"] == orig["member_success"] and v["sim_steps"] == 5
        for cam in ("primary", "wrist"):
            np.testing.assert_array_equal(v["sim"][cam], orig["sim"][cam])
            for got, want in zip(v["members"], orig["members"]):
                np.testing.assert_array_equal(got[cam], want[cam])
            np.testing.assert_array_equal(v["model"][cam], orig["members"][0][cam])
    keys = set(np.load(tmp_path / "metrics_videos.npz").files)
    assert "v0_m2_wrist" in keys and "v1_m1_primary" not in keys
