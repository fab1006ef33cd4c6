"""World model end to end on a tiny real RLDS dataset (SquareWorld episodes written with RLDSWriter).

One module-scoped fixture writes the dataset and trains a micro model through the `wm-train` console
script; the tests then check resume, imagination with a policy acting on decoded frames, open- and
closed-loop evaluation (`wm-eval`), the HTML report and the interactive page in headless Chromium, and the
bad-input errors. The model is far too small to be accurate: quality is measured in bench/world_model.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from vla.core.types import Observation, Policy
from world_model.data import DataMismatchError, load_episodes
from world_model.imagine import PolicyError, imagine
from world_model.model import WorldModel
from world_model.toy import ENV_ID, VisualServoPolicy, collect_episodes

pytestmark = pytest.mark.slow  # trains a model in the module fixture (~1-3 min with everything)

BIN = Path(sys.executable).parent
SIZE = 32
TRAIN = ["world_model=micro", "trainer.ae_steps=40", "trainer.dyn_steps=30", "trainer.rollout_steps=2",
         "trainer.ae_batch_size=16", "trainer.dyn_batch_size=16", "trainer.val_every=15", "trainer.ckpt_every=15",
         "trainer.log_every=10", "data.val_fraction=0.25", "trainer.threads=1"]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a shared 2-core box, OpenMP spinning with 2 threads is several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(args: list[str], cwd: Path, timeout: int = 400) -> subprocess.CompletedProcess:
    env = dict(os.environ, TQDM_DISABLE="1")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> dict:
    from vla.data.rlds_writer import RLDSWriter

    root = tmp_path_factory.mktemp("wm")
    with RLDSWriter(root / "data", "square", cameras=("primary", "wrist"), image_size=(SIZE, SIZE), state_dim=4,
                    episodes_per_shard=4) as w:
        for ep in collect_episodes(10, seed=0, image_size=SIZE, max_steps=12):
            w.write(ep)
    ds = root / "data" / "square" / "1.0.0"
    ckpt = root / "wm"
    r = _run([str(BIN / "wm-train"), f"data.dataset_dirs=[{ds}]", f"output_dir={ckpt}", *TRAIN], root)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return {"root": root, "dataset": ds, "ckpt": ckpt, "train_log": r.stdout + r.stderr}


@pytest.fixture(scope="module")
def model(workdir) -> WorldModel:
    return WorldModel.load(workdir["ckpt"])


@pytest.fixture(scope="module")
def episodes(workdir, model):
    return load_episodes([workdir["dataset"]], model.cameras, model.config.image_size)


def test_train_writes_atomic_resumable_checkpoints(workdir):
    ckpt = workdir["ckpt"]
    assert (ckpt / "latest").is_symlink() and (ckpt / "latest" / "model.safetensors").is_file()
    assert not list((ckpt / "checkpoints").glob(".tmp*")), "temporary checkpoint dirs must be renamed or removed"
    assert list((ckpt / "tb").glob("events.out.tfevents.*")), "TensorBoard events missing"
    split = json.loads((ckpt / "latest" / "split.json").read_text())
    assert split["val_episode_ids"] and not set(split["val_episode_ids"]) & set(split["train_episode_ids"])
    # Resume: the same command with more dynamics steps continues from `latest` instead of starting over.
    copy = workdir["root"] / "wm_resume"
    shutil.copytree(ckpt, copy, symlinks=True)
    r = _run([str(BIN / "wm-train"), f"data.dataset_dirs=[{workdir['dataset']}]", f"output_dir={copy}",
              *[a for a in TRAIN if not a.startswith("trainer.dyn_steps")], "trainer.dyn_steps=35"], workdir["root"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stderr + r.stdout
    summary = json.loads((copy / "train_summary.json").read_text())
    assert summary["ae_steps"] == 40 and summary["dyn_steps"] == 35
    assert os.path.realpath(copy / "latest").endswith("step_0000075")


def test_wrong_config_key_gives_hydra_error_and_hint(tmp_path):
    r = _run([str(BIN / "wm-train"), "trainer.no_such_key=1"], tmp_path, timeout=120)
    assert r.returncode != 0
    assert "no_such_key" in r.stderr and "Hint: wm-train" in r.stderr


class _Recorder(Policy):
    """Servo policy that records what it was shown."""

    def __init__(self):
        self.inner, self.seen = VisualServoPolicy(), []

    def reset(self, instruction):
        self.inner.reset(instruction)

    def act(self, observation: Observation):
        self.seen.append(observation)
        return self.inner.act(observation)


def test_imagine_policy_acts_on_decoded_frames(model, episodes):
    pol = _Recorder()
    traj = imagine(model, pol, (episodes[0], 2), episodes[0].instruction, horizon=6, stop_on_success=False)
    assert len(traj) == 6 and traj.actions.shape == (6, 7) and traj.success_prob.shape == (6,)
    assert traj.frames["primary"].shape == (7, SIZE, SIZE, 3) and traj.proprio.shape == (7, 4)
    assert len(pol.seen) == 6
    for t, obs in enumerate(pol.seen):  # the policy sees sim-sized frames of every camera + predicted proprio
        assert set(obs.images) == {"primary", "wrist"} and obs.images["wrist"].shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(obs.images["primary"], traj.frames["primary"][t])
        np.testing.assert_allclose(obs.proprio, traj.proprio[t])
    # From a raw first observation (what the sim gives at reset), with a padded history.
    first = Observation({c: episodes[1].frames[c][0] for c in model.cameras}, episodes[1].proprio[0], "x")
    traj2 = imagine(model, VisualServoPolicy(), first, "x", horizon=3, stop_on_success=False)
    np.testing.assert_array_equal(traj2.frames["primary"][0], first.images["primary"])
    assert len(traj2) == 3 and not traj2.warnings


def test_actions_change_the_imagined_future(model, episodes):
    state = model.start_state(episodes[0], 3)
    a = np.zeros((2, 7), np.float32)
    a[0, 0], a[1, 0] = 0.05, -0.05
    a[:, 6] = 1.0
    batched = type(state)(state.latents.repeat(2, 1, 1, 1), state.proprio.repeat(2, 1, 1), state.action.repeat(2, 1, 1))
    _, out = model.step(batched, a)
    assert float((out.latents[0] - out.latents[1]).abs().mean()) > 0


class _Raises(Policy):
    def act(self, observation):
        raise RuntimeError("gripper driver offline")


class _NaN(Policy):
    def act(self, observation):
        return np.full(7, np.nan, np.float32)


def test_bad_inputs_fail_clearly(model, episodes):
    ep = episodes[0]
    with pytest.raises(PolicyError, match="_Raises raised RuntimeError at imagined step 0: gripper driver offline"):
        imagine(model, _Raises(), ep, ep.instruction, horizon=3)
    with pytest.raises(PolicyError, match="non-finite"):
        imagine(model, _NaN(), ep, ep.instruction, horizon=3)
    # Horizon longer than any training episode: allowed, with a warning.
    traj = imagine(model, VisualServoPolicy(), ep, ep.instruction, horizon=model.max_episode_length + 2,
                   stop_on_success=False)
    assert traj.warnings and "longer than the longest training episode" in traj.warnings[0]
    # An episode shorter than the history still imagines (the context repeats step 0) ...
    short = collect_episodes(1, seed=99, image_size=SIZE, max_steps=1)
    short_ep = load_episodes(short, model.cameras, model.config.image_size)[0]
    assert len(short_ep) < model.config.history + 1
    assert len(imagine(model, VisualServoPolicy(), short_ep, "x", horizon=2, stop_on_success=False)) == 2
    with pytest.raises(ValueError, match="beyond episode"):
        imagine(model, VisualServoPolicy(), (short_ep, 5), "x", horizon=2)
    # Data from other cameras or another image size than the checkpoint was trained on.
    other_size = load_episodes(collect_episodes(1, image_size=48, max_steps=4), model.cameras, model.config.image_size)
    with pytest.raises(DataMismatchError, match=r"\(48, 48\) images, the checkpoint was trained on \(32, 32\)"):
        model.prepare(other_size)
    with pytest.raises(DataMismatchError, match="missing \\['wrist'\\]"):
        load_episodes(collect_episodes(1, image_size=SIZE, max_steps=4, cameras=("primary",)), model.cameras, SIZE)
    with pytest.raises(Exception, match="trained on \\(32, 32\\) images"):
        imagine(model, VisualServoPolicy(), Observation({c: np.zeros((48, 48, 3), np.uint8) for c in model.cameras},
                                                        np.zeros(4), "x"), "x", horizon=2)


@pytest.fixture(scope="module")
def eval_json(workdir) -> Path:
    """`wm-eval` run once per module (a fixture, not a test's side effect, so any xdist worker can use it)."""
    out = workdir["root"] / "eval" / "metrics.json"
    r = _run([str(BIN / "wm-eval"), f"checkpoint={workdir['ckpt']}", "horizon=4", "starts_per_episode=2",
              f"env_id={ENV_ID}", "++env_kwargs={image_size:32,max_episode_steps:12}",
              "policies=[servo,'servo:gain=0.5,noise=0.02',random]", "num_initial_states=2", "max_steps=8",
              "bootstrap=50", f"output={out}"], workdir["root"])
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_wm_eval_open_and_closed_loop(eval_json):
    out = eval_json
    res = json.loads(out.read_text())
    ol = res["open_loop"]
    assert ol["episodes_source"] == "validation split of the checkpoint"
    for key in ("model", "copy_last", "shuffled_actions"):
        assert len(ol["latent_mse"][key]) == 4
    for key in ("model", "copy_last", "decoder_ceiling"):
        assert len(ol["pixel_psnr"][key]) == 4 and len(ol["pixel_ssim"][key]) == 4
    cl = res["closed_loop"]
    assert set(cl["policies"]) == {"servo", "servo:gain=0.5,noise=0.02", "random"}
    for p in cl["policies"].values():
        assert len(p["sim"]) == 2 and len(p["model"]) == 2
    assert {"pearson", "spearman", "kendall", "mmrv", "bias"} <= set(cl["agreement"])
    assert (out.parent / "metrics_videos.npz").is_file()


def test_wm_eval_ensemble(workdir, model, episodes):
    """`ensemble=[...]` loads more checkpoints and averages the closed loop over them (here the same one twice:
    members that always agree); without a closed loop to use it, the key is an error, not silently ignored."""
    from world_model.cli.eval import run_eval
    from world_model.config import WMEvalConfig

    out = workdir["root"] / "eval_ens" / "metrics.json"
    r = _run([str(BIN / "wm-eval"), f"checkpoint={workdir['ckpt']}", f"ensemble=[{workdir['ckpt']}]", "horizon=2",
              "starts_per_episode=1", "max_episodes=2", f"env_id={ENV_ID}", "++env_kwargs={image_size:32}",
              "policies=[servo,random,noop]", "num_initial_states=2", "max_steps=6", "bootstrap=20",
              f"output={out}"], workdir["root"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "member 1 alone" in r.stdout + r.stderr
    cl = json.loads(out.read_text())["closed_loop"]
    assert cl["members"] == 2 and cl["member_disagreement"] == 0.0
    for p in cl["policies"].values():
        assert p["member_success"][0] == p["member_success"][1] == p["model_success"]
    from world_model.results_io import load_results
    from world_model.viz.report import build_report

    html = build_report(model, episodes[:2], workdir["root"] / "ens_report.html", eval_results=load_results(out),
                        horizon=2, num_rows=1).read_text()
    assert "Ensemble of 2 world models" in html and "<th>members</th>" in html
    assert "members disagree on 0% of the episodes" in html
    with pytest.raises(ValueError, match="ensemble is only used by the closed loop"):
        run_eval(WMEvalConfig(checkpoint=str(workdir["ckpt"]), ensemble=[str(workdir["ckpt"])], horizon=2,
                              max_episodes=1, starts_per_episode=1, output=str(workdir["root"] / "x.json")))


CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]

_NONBLANK_JS = """
() => Array.from(document.images).map(img => {
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data; let s = 0, s2 = 0, n = d.length / 4;
  for (let i = 0; i < d.length; i += 4) { const v = d[i] + d[i+1] + d[i+2]; s += v; s2 += v * v; }
  return {cls: img.className, w: img.naturalWidth, std: Math.sqrt(Math.max(s2 / n - (s / n) ** 2, 0))};
})
"""


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (make install installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


def test_report_in_headless_chromium(workdir, model, browser, eval_json):
    out = workdir["root"] / "report.html"
    horizon = model.max_episode_length + 1  # longer than trained: the report must say so
    r = _run([str(BIN / "wm-viz"), f"checkpoint={workdir['ckpt']}", f"eval_json={eval_json}",
              f"horizon={horizon}", "num_rows=2", f"output={out}"], workdir["root"])
    assert r.returncode == 0, r.stderr[-3000:]
    page = browser.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.resolve().as_uri())
    assert errors == []
    assert "longer than the longest training episode" in page.inner_text(".warn")
    imgs = page.evaluate(_NONBLANK_JS)
    classes = " ".join(i["cls"] for i in imgs)
    assert "openloop" in classes and "sweep" in classes and "video" in classes
    for i in imgs:
        assert i["w"] > 0 and i["std"] > 2.0, f"blank image {i}"
    svgs = page.evaluate("() => Array.from(document.querySelectorAll('svg')).map(s => "
                         "[s.getBoundingClientRect().width, s.querySelectorAll('path,use').length])")
    assert len(svgs) == 3, "expected the error-over-horizon plot, the success scatter and the ranking chart"
    for width, n in svgs:
        assert width > 100 and n > 10
    from world_model.results_io import load_results

    _assert_judge_rendered(page, "body", load_results(eval_json)["closed_loop"], members=1)
    page.close()


_JUDGE_JS = """
(root) => ({
  ranking: Array.from(document.querySelectorAll(root + ' #ranking svg')).map(s => s.getBoundingClientRect().width),
  videos: Array.from(document.querySelectorAll(root + ' img.video')).map(i => [i.dataset.camera,
          i.getBoundingClientRect().width, i.getBoundingClientRect().height, i.naturalWidth]),
  captions: Array.from(document.querySelectorAll(root + ' .divergence')).map(d => d.innerText),
})
"""


def _assert_judge_rendered(page, root: str, closed: dict, members: int) -> list[str]:
    """The ranking chart, one rendered GIF per camera per recorded episode (`members` imagined panels beside the
    sim) and each member's divergence caption, under `root`; returns the captions."""
    import re

    got = page.evaluate(_JUDGE_JS, root)
    assert len(got["ranking"]) == 1 and got["ranking"][0] > 100, "ranking chart missing or not rendered"
    videos = closed["videos"]
    cams = sorted(videos[0]["sim"])
    assert len(videos) > 0 and len(got["videos"]) == len(videos) * len(cams), got["videos"]
    assert sorted({v[0] for v in got["videos"]}) == cams
    size = videos[0]["sim"][cams[0]].shape[1] * (128 // videos[0]["sim"][cams[0]].shape[1])
    for cam, width, height, natural in got["videos"]:
        assert width > 0 and height > 0, f"{cam} video not rendered"
        assert natural == (members + 1) * size + members * 4, "expected sim plus each member side by side"
    assert len(got["captions"]) == len(videos) * members
    for c in got["captions"]:
        assert re.search(r"(diverges at step \d+|no divergence) \(", c), c
    return got["captions"]


def test_closed_loop_reuses_sim_runner_results(model):
    """Sim outcomes from another runner (same seeds + DR parameters) are taken as given; the model replays them."""
    from world_model.closed_loop import compare_policies, initial_states, make_env, run_in_sim
    from vla.policy import make_policy
    from world_model.policies import policy_context

    env = make_env(ENV_ID, image_size=SIZE)
    states = initial_states(env, [7, 8], model.cameras)
    policies = dict(make_policy(s, policy_context()) for s in ("servo", "random", "noop"))
    sim_results = {n: [{"seed": st.seed, "dr_params": st.dr_params, "steps": 8,
                        "success": run_in_sim(env, p, st, 8, model.cameras).success} for st in states]
                   for n, p in policies.items()}
    sim_results["noop"][1]["success"] = True  # taken as given, not re-simulated
    out = compare_policies(model, ENV_ID, policies, env_kwargs={"image_size": SIZE}, max_steps=8, record=0,
                           sim_results=sim_results, bootstrap=20, progress=False)
    assert out["seeds"] == [7, 8] and out["policies"]["noop"]["sim"] == [False, True]
    assert out["videos"] == [] and "agreement" in out
    sim_results["random"] = sim_results["random"][::-1]
    with pytest.raises(ValueError, match="same seed order"):
        compare_policies(model, ENV_ID, policies, env_kwargs={"image_size": SIZE}, max_steps=8, record=0,
                         sim_results=sim_results, progress=False)


def test_closed_loop_with_an_ensemble_averages_members(model):
    """Each member imagines every episode: the policy's imagined success is the members' mean, an episode's
    verdict the majority; each member's own ranking is reported next to the ensemble's."""
    import copy

    from world_model.closed_loop import compare_policies
    from vla.policy import make_policy
    from world_model.policies import policy_context

    optimist = copy.deepcopy(model)
    optimist.__dict__.pop("_fast_steps", None)
    optimist.success_pos_weight = 1e-30  # calibrated probability ~1 after every step: always imagines success
    policies = dict(make_policy(s, policy_context()) for s in ("servo", "random", "noop"))
    kw = dict(env_kwargs={"image_size": SIZE}, max_steps=6, record=0, bootstrap=20, progress=False,
              num_initial_states=3, seed=40)
    alone = compare_policies(model, ENV_ID, policies, **kw)
    both = compare_policies([model, optimist], ENV_ID, policies, **kw)
    assert both["members"] == 2 and len(both["member_agreement"]) == 2
    for name, r in both["policies"].items():
        own = alone["policies"][name]
        assert r["sim"] == own["sim"]
        assert r["member_success"] == [own["model_success"], 1.0]
        assert r["model_success"] == pytest.approx((own["model_success"] + 1.0) / 2)
        assert r["votes"] == [0.5 + 0.5 * ok for ok in own["model"]]
        assert r["model"] == own["model"]  # majority of two: both must imagine success
        assert r["member_model"] == [own["model"], [True] * 3]
    assert both["member_episode_agreement"][0] == alone["episode_agreement"]
    share = np.mean([not ok for r in alone["policies"].values() for ok in r["model"]])
    assert both["member_disagreement"] == pytest.approx(share)
    assert "members" not in alone and "votes" not in alone["policies"]["servo"]
    other = copy.deepcopy(model)
    other.config.image_size = model.config.image_size * 2
    with pytest.raises(ValueError, match="member 1 sees cameras"):
        compare_policies([model, other], ENV_ID, policies, **kw)
    with pytest.raises(ValueError, match="no world model"):
        compare_policies([], ENV_ID, policies, **kw)


def test_demo_stage_trains_evaluates_and_reports(workdir):
    from demo.world_model_stage import rehearse
    from vla.policy import make_policy
    from world_model.policies import policy_context

    policies = dict(make_policy(s, policy_context()) for s in ("servo", "servo:gain=0.05", "random"))
    out = rehearse(workdir["dataset"], policies, workdir["root"] / "demo_wm", budget_s=10, env_id=ENV_ID,
                   env_kwargs={"image_size": SIZE, "max_episode_steps": 12}, num_initial_states=2, max_steps=8,
                   model="micro", progress=False)
    assert Path(out["report"]).is_file() and Path(out["metrics"]).is_file()
    names = [t["name"] for t in out["targets"]]
    assert any("copy-last" in n for n in names) and any("Spearman" in n for n in names)
    for t in out["targets"]:
        assert set(t) == {"name", "value", "baseline", "target", "met"}
    assert set(out["closed_loop"]["policies"]) == set(policies)
    assert out["timings"]["total"] > 0


def test_interactive_page_key_press_advances(model, episodes, browser, eval_json):
    from world_model.viz.server import Session, serve

    from world_model.results_io import load_results

    closed = load_results(eval_json)["closed_loop"]
    server = serve(Session(model, episodes[:3], VisualServoPolicy(), "servo", eval_results={"closed_loop": closed}),
                   port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_for_selector("#status[data-step='0']")
        before = page.locator("#frames").screenshot()
        for key, step in (("ArrowRight", 1), ("ArrowRight", 2), ("ArrowUp", 3), ("s", 4)):
            page.keyboard.press(key)
            page.wait_for_selector(f"#status[data-step='{step}']")
        after = page.locator("#frames").screenshot()
        assert before != after
        page.click("#policy")
        page.wait_for_selector("#status[data-step='5']")
        assert "success prob" in page.inner_text("#status")
        page.wait_for_selector("#judge[data-loaded='yes']")  # wm-viz serve=true eval_json=...: the judge section
        _assert_judge_rendered(page, "#judge", closed, members=1)
        assert errors == [] and page.inner_text("#err") == ""
        page.close()
    finally:
        server.shutdown()
        server.server_close()


def test_report_shows_each_ensemble_member_in_headless_chromium(workdir, browser, eval_json):
    """An ensemble's recorded episodes: sim | member 0 | member 1 per camera, each member's own divergence. Member
    1 here replays the sim's frames (a perfect model), so it must not diverge; the ranking shows both members."""
    import copy

    from world_model.results_io import load_results, save_results
    from world_model.viz.judge import JUDGE_CSS, judge_html

    closed = copy.deepcopy(load_results(eval_json)["closed_loop"])
    for v in closed["videos"]:
        v["members"] = [v["model"], v["sim"]]
        v["member_success"] = [v["model_success"], v["sim_success"]]
    for p in closed["policies"].values():
        p["member_model"] = [p["model"], p["sim"]]
        p["member_success"] = [float(np.mean(m)) for m in p["member_model"]]
        p["model_success"] = float(np.mean(p["member_success"]))
    closed["members"] = 2
    path = save_results({"closed_loop": closed}, workdir["root"] / "ens_viz" / "metrics.json")
    closed = load_results(path)["closed_loop"]  # the members' frames survive the results file
    out = workdir["root"] / "ens_viz" / "judge.html"
    out.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{JUDGE_CSS}</style></head><body>"
                   f"{judge_html(closed)}</body></html>")
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.resolve().as_uri())
    captions = _assert_judge_rendered(page, "body", closed, members=2)
    assert all(c.startswith("member 1: no divergence") for c in captions[1::2]), captions
    assert all(c.startswith("member 0: ") for c in captions[::2])
    assert "<!-- members -->" in page.inner_html("#ranking")  # the legend entry of the members' dots
    assert errors == []
    page.close()
