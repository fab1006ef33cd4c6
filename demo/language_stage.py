"""Demo stages 4 and 5: does the tiny VLA do what it is told? The language protocol and a side-by-side video.

`run_language_stage` runs `sim_envs.language_eval`'s swap and blind conditions (what `vla-eval
protocol=language 'language.conditions=[swap,blind]'` runs) on the demo's tasks whose scenes offer several
instructions: every held-out scene once per instruction, success judged on the named target, and the same
episodes with the instruction replaced by one fixed string (the blind-language baseline, the `instruction=`
option of the policy-spec grammar). Writes `<out>/language/{language.json,language.png}` and per condition
the episodes (`<out>/language/<condition>/`).

Both render with MuJoCo in the calling process and probe scenes with in-process resets (`scene_candidates`), which MuJoCo's
software renderer cannot do next to TensorFlow (loaded by the demo's collection and training): the demo
runs them through `in_child`, in a spawned process that never loads TensorFlow.

`run_side_by_side` runs one held-out scene twice, under the instructions naming candidates 0 and 1 (reset
option `target`; the layout never depends on it, and the second run replays the first one's DR parameters),
and writes both episodes as one mp4, side by side, each under its instruction and outcome
(`<out>/language/side_by_side.mp4`, `sim_envs.video.write_side_by_side`).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
from pathlib import Path
from typing import Any, Callable, Sequence

from demo.eval_stage import TaskData, build_policies

logger = logging.getLogger(__name__)

CONDITIONS = ("swap", "blind")
#: The task the side-by-side video shows when the demo trains on it (else the first task with several instructions).
VIDEO_TASK = "LiftNamedCube"


def in_child(stage: Callable[..., dict[str, Any]], cfg, out: Path, data: Sequence[TaskData], checkpoint: Path
             ) -> dict[str, Any]:
    """`stage(cfg, out, data, checkpoint)` in a spawned child process (no TensorFlow there); its JSON result."""
    result_path = out / "language" / f"{stage.__name__}.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.unlink(missing_ok=True)
    proc = mp.get_context("spawn").Process(target=_child, args=(stage, cfg, out, list(data), checkpoint, result_path))
    proc.start()
    proc.join()
    if proc.exitcode != 0 or not result_path.is_file():
        raise RuntimeError(f"{stage.__name__} failed in its child process (exit code {proc.exitcode}); see the log above")
    return json.loads(result_path.read_text())


def _child(stage, cfg, out: Path, data: list[TaskData], checkpoint: Path, result_path: Path) -> None:
    from vla.cli.hydra_app import default_headless_gl

    default_headless_gl()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = stage(cfg, out, data, checkpoint)
    result_path.write_text(json.dumps(result, default=str))


def _settings(cfg, **kwargs):
    from sim_envs.evaluation import EvalSettings

    return EvalSettings(**{"sim": cfg.sim_config(), "num_envs": cfg.eval_envs, "execute_steps": cfg.execute_steps,
                           **kwargs})


def instruction_tasks(data: Sequence[TaskData], cfg) -> list[TaskData]:
    """The tasks whose scenes offer several instructions (the others have nothing to swap)."""
    from sim_envs.language_eval import scene_candidates

    settings = _settings(cfg)
    return [d for d in data if scene_candidates(d.task, settings)[0] >= 2]


def run_language_stage(cfg, out: Path, data: Sequence[TaskData], checkpoint: Path) -> dict[str, Any]:
    """Swap and blind runs of the tiny VLA per task; returns the summary's `language` entry with its targets."""
    import torch

    from sim_envs.language_eval import BLIND_INSTRUCTION, plot_language, run_language_protocol, summarize_language
    from sim_envs.results import write_results

    torch.set_num_threads(cfg.torch_threads)
    usable = instruction_tasks(data, cfg)
    skipped = [d.short for d in data if d not in usable]
    if skipped:
        logger.warning("language stage: %s offer one instruction per scene (nothing to swap); skipped", skipped)
    if not usable:
        return {"tasks": [], "skipped_tasks": skipped, "targets": language_targets(None)}
    settings = _settings(cfg)
    results: dict[str, dict[str, list]] = {c: {"tiny_vla": []} for c in CONDITIONS}
    for d in usable:  # task by task: each un-normalizes with its own dataset's statistics
        policies = build_policies(["tiny_vla"], checkpoint, d, seed=cfg.seed)
        blind = build_policies(["tiny_vla"], checkpoint, d, seed=cfg.seed, instruction=BLIND_INSTRUCTION)
        by_condition = run_language_protocol(policies, blind, [d.task], cfg.dr_level, cfg.language_seeds, settings,
                                             conditions=CONDITIONS)
        for c in CONDITIONS:
            results[c]["tiny_vla"].extend(by_condition[c]["tiny_vla"])
    lang_dir = out / "language"
    for condition, by_policy in results.items():
        write_results(by_policy, lang_dir / condition)
    report = summarize_language(results)
    (lang_dir / "language.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_language(report, lang_dir / "language.png")
    entry = report["tiny_vla"]
    swap, blind = entry["swap"], entry["blind"]

    def mean_wrong(cond: dict) -> float:
        rates = [t["wrong_target_rate"] for t in cond["per_task"].values()]
        return sum(rates) / len(rates)

    summary = {
        "tasks": [d.short for d in usable], "skipped_tasks": skipped, "seeds_per_task": cfg.language_seeds,
        "blind_instruction": BLIND_INSTRUCTION,
        # means over tasks (each task weighs the same, whatever its number of instructions per scene)
        "swap_success": swap["mean_task_success"], "swap_wrong_target": mean_wrong(swap),
        "blind_success": blind["mean_task_success"], "blind_wrong_target": mean_wrong(blind),
        "chance": swap["chance"],
        "per_task": {d.short: {
            "instructions_per_scene": swap["per_task"][d.task]["n_episodes"] // cfg.language_seeds,
            "chance": swap["per_task"][d.task]["chance"],
            **{f"{c}_{k}": entry[c]["per_task"][d.task][key] for c in CONDITIONS
               for k, key in (("success", "success_rate"), ("ci95", "ci95"), ("wrong_target", "wrong_target_rate"))},
        } for d in usable},
        "report": str(lang_dir / "language.json"), "plot": str(lang_dir / "language.png"),
    }
    summary["targets"] = language_targets(summary)
    return summary


def language_targets(summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's three language targets; all unmet (value None) when no task could be swapped."""
    swap = summary["swap_success"] if summary else None
    wrong = summary["swap_wrong_target"] if summary else None
    blind = summary["blind_success"] if summary else None
    gain = swap - blind if summary else None
    return [
        {"name": "language swap: tiny VLA success on the named target (mean over tasks)", "value": swap,
         "baseline": summary["chance"] if summary else None, "target": 0.7, "met": swap is not None and swap >= 0.7},
        {"name": "language swap: tiny VLA wrong-target rate (mean over tasks)", "value": wrong,
         "baseline": summary["blind_wrong_target"] if summary else None, "target": 0.1,
         "met": wrong is not None and wrong <= 0.1},
        {"name": "language swap success - blind-language success (must be > 0)", "value": gain, "baseline": blind,
         "target": 0.0, "met": gain is not None and gain > 0},
    ]


def outcome(result) -> str:
    """What an episode did with its instruction, in words."""
    if result.error:
        return "error"
    if result.success:
        return "success on the named target" + (" (and moved another object)" if result.wrong_target else "")
    return "wrong target" if result.wrong_target else "no success"


def run_side_by_side(cfg, out: Path, data: Sequence[TaskData], checkpoint: Path) -> dict[str, Any]:
    """One held-out scene under two instructions (candidates 0 and 1), as one side-by-side mp4."""
    from sim_envs.evaluation import EVAL_SEED_START, EpisodeSpec, evaluate_policies
    from sim_envs.video import read_mp4, write_side_by_side

    import torch

    torch.set_num_threads(cfg.torch_threads)
    usable = instruction_tasks(data, cfg)
    if not usable:
        return {"video": None, "skipped": "no task of the demo offers several instructions per scene"}
    d = next((x for x in usable if x.short == VIDEO_TASK), usable[0])
    policy = build_policies(["tiny_vla"], checkpoint, d, seed=cfg.seed)["tiny_vla"]
    video_dir = out / "language" / "side_by_side"
    seed, dr_params, results = EVAL_SEED_START, None, []
    for target in (0, 1):
        settings = _settings(cfg, num_envs=1, videos_per_cell=1, video_dir=video_dir / f"target{target}", progress=False)
        spec = EpisodeSpec(d.task, cfg.dr_level, seed, dr_params, target=target)
        r = evaluate_policies({"tiny_vla": policy}, [spec], settings)["tiny_vla"][0]
        dr_params = r.dr_params  # the second instruction replays the first one's scene exactly
        results.append(r)
    episodes = [{"instruction": r.instruction, "target": r.target, "named": r.named, "outcome": outcome(r),
                 "success": r.success, "wrong_target": r.wrong_target, "steps": r.steps, "error": r.error,
                 "episode_video": r.video_path} for r in results]
    summary: dict[str, Any] = {
        "task": d.short, "seed": seed, "dr_level": cfg.dr_level, "episodes": episodes,
        "same_initial_state": results[0].initial_state_hash == results[1].initial_state_hash,
        "different_outcomes": episodes[0]["outcome"] != episodes[1]["outcome"], "video": None,
    }
    if any(r.video_path is None for r in results):
        summary["video_error"] = "an episode video was not written (see the log)"
        return summary
    titles = [f'"{r.instruction}": {outcome(r)}' for r in results]
    path = write_side_by_side([read_mp4(r.video_path) for r in results], titles, out / "language" / "side_by_side.mp4",
                              fps=settings.video_fps)
    summary["video"] = str(path)
    logger.info("side-by-side video %s: %s", path, "; ".join(titles))
    return summary
