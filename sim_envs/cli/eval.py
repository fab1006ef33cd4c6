"""`vla-eval`: evaluate policies in simulation over tasks x DR levels x held-out seeds.

    vla-eval policy=outputs/train/final tasks=[LiftCube] levels=[none,low,high] seeds=20   # several DR levels
    vla-eval policy=outputs/train/final dr=medium dr.sensor.image_noise_std=8             # one level (`dr` group)
    vla-eval policy=[outputs/train/final,no_vision,random] policy_options.dataset=outputs/data/sim_liftcube_none/1.0.0
    vla-eval policy=expert eval=dr_sweep num_envs=2                     # presets: configs/eval/*.yaml
    vla-eval --cfg job                                                  # print the resolved config
    vla-eval suite=libero_spatial policy=checkpoints/openvla-7b-libero-spatial policy_options.device=cuda
    vla-eval suite=standard policy=<dir> libero.workers=8 shard=0/4 hydra.run.dir=outputs/libero/s0   # shard 0 of 4
    vla-eval 'merge=[outputs/libero]'                                   # recombine the shards found below it

`dr=<level>` selects one config of the `dr` group (none|low|medium|high, its fields overridable);
`levels=[...]` (or `levels=all`) sweeps several shipped levels. A list given to `dr=` is refused, since
hydra would merge the listed configs into one. `policy` is a spec of `vla.policy`'s grammar: a VLA
checkpoint directory, `random`, `no_vision`, `expert`, or any registered `kind:key=value,...`, with the
options every kind takes (quoted, since hydra reads `=` itself: `'policy=[expert,"expert:noise=0.01"]'`,
`'policy="vla:path=<dir>,blank_images=1"'`, or as a mapping: `policy={kind:expert,noise:0.01}`); with a
list, every policy replays the same initial states.
Writes, under `<output_dir>/<date_time>/`: `<policy>/episodes.jsonl`, `<policy>/eval_info.json`
(LeRobot-like layout, Wilson 95% intervals), `videos/<policy>_<task>_<level>_seed<seed>.mp4`,
`summary.json` and `success_vs_dr.png`, and prints a table. Logic: `sim_envs.evaluation`.

`suite=` runs LIBERO instead (`sim_envs.libero`, docs/libero.md): the standard protocol (50 fixed initial
states per task, wait steps, per-suite step budgets, the env's success predicate) in LIBERO's own venv
(`make libero-venv`), the policy served over loopback, OpenVLA's conventions under `libero.conventions`;
`libero.json` per policy has per-suite and per-task rates with Wilson intervals.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sim_envs.cli.config import EvalConfig, dr_config_from, register_configs, sim_config_from
from vla.cli.hydra_app import ConfigHint, default_headless_gl

logger = logging.getLogger("sim_envs.cli.eval")
LEVELS_HINT = "Hint: dr=<level> selects one DR level (none|low|medium|high); several: levels=[none,low,...] or levels=all"


def _as_list(value) -> list:
    if OmegaConf.is_list(value) or isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _levels_hint(argv: list[str]) -> str:
    return LEVELS_HINT if any(a.startswith("dr=") for a in argv) else ""


_hint = ConfigHint("vla-eval", "eval", _levels_hint)


@hydra.main(version_base=None, config_path="pkg://configs", config_name="eval")
@_hint.task
def _app(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    logger.info("config:\n%s", OmegaConf.to_yaml(cfg))
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if any(o.startswith("dr=[") for o in HydraConfig.get().overrides.task):
        # hydra would silently merge the listed configs of the `dr` group into one
        logger.error("%s", LEVELS_HINT)
        sys.exit(2)
    try:
        if cfg.merge is not None:
            merge_libero(cfg, out_dir)
        elif cfg.suite is not None:
            run_libero_eval(cfg, out_dir)
        else:
            run_eval(cfg, out_dir)
    except (ValueError, FileNotFoundError, KeyError) as e:
        logger.error("%s", e)
        sys.exit(2)


def run_eval(cfg: DictConfig, out_dir: Path) -> dict:
    """Resolve the config, run every policy from the same initial states, write and print the results."""
    from sim_envs.baselines import policy_context
    from sim_envs.evaluation import EvalSettings, available_levels, available_tasks, evaluate_policies, plan_episodes, write_outputs
    from vla.policy import policy_source

    tasks = available_tasks() if _as_list(cfg.tasks) == ["all"] else [str(t) for t in _as_list(cfg.tasks)]
    dr_configs = None
    if cfg.levels is None:  # one level, from the `dr` group (possibly customized on the command line)
        dr_config = dr_config_from(cfg.dr)
        levels, dr_configs = [dr_config.level], {dr_config.level: dr_config}
    elif _as_list(cfg.levels) == ["all"]:
        levels = available_levels()
    else:
        levels = [str(lv) for lv in _as_list(cfg.levels)]
    seeds = OmegaConf.to_object(cfg.seeds) if OmegaConf.is_list(cfg.seeds) else cfg.seeds
    specs = plan_episodes(tasks, levels, seeds)
    task_ids = list(dict.fromkeys(s.task for s in specs))
    opts = cfg.policy_options
    dataset = OmegaConf.to_object(opts.dataset) if OmegaConf.is_list(opts.dataset) else opts.dataset
    context = policy_context(task_ids, datasets=dataset, seed=opts.seed, device=opts.device, unnorm_key=opts.unnorm_key)
    policies = {}
    for spec in _as_list(cfg.policy):
        name, policy = policy_source(OmegaConf.to_object(spec) if OmegaConf.is_config(spec) else str(spec), context)
        policies[name] = policy
    settings = EvalSettings(
        sim=sim_config_from(cfg.sim), num_envs=cfg.num_envs, vector=cfg.vector, execute_steps=cfg.execute_steps,
        videos_per_cell=cfg.video.episodes_per_cell, video_dir=out_dir / "videos", video_fps=cfg.video.fps,
        dr_configs=dr_configs,
    )
    if cfg.protocol == "language":
        return _run_language(cfg, out_dir, tasks, levels, seeds, context, policies, settings)
    if cfg.protocol == "robustness":
        return _run_robustness(cfg, out_dir, task_ids, seeds, policies, settings)
    if cfg.protocol != "dr":
        raise ValueError(f"protocol={cfg.protocol!r}; choose dr (policies x tasks x DR levels), language "
                         "(instruction swap, paraphrase, blind-language baseline) or robustness (one perturbation "
                         "dimension at a time)")
    logger.info("%d policies x %d tasks x %d DR levels x %d seeds = %d episodes; output: %s",
                len(policies), len(task_ids), len(levels), len(specs) // (len(task_ids) * len(levels)),
                len(specs) * len(policies), out_dir)
    t0 = time.perf_counter()
    results = evaluate_policies(policies, specs, settings)
    paths = write_outputs(results, out_dir, config=OmegaConf.to_container(cfg, resolve=True), levels=levels,
                          plot=cfg.plot)
    _print_table(results, levels)
    logger.info("done in %.1f s; results: %s", time.perf_counter() - t0, out_dir)
    return {"results": results, "paths": paths}


def _libero_settings(cfg: DictConfig):
    from sim_envs.libero.runner import LiberoConfig

    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LiberoConfig), cfg.libero))


def run_libero_eval(cfg: DictConfig, out_dir: Path) -> dict:
    """`suite=...`: every policy on every LIBERO suite (sim_envs.libero.runner); prints per-suite rates."""
    from sim_envs.libero.runner import run_libero
    from sim_envs.libero.suites import resolve_suites
    from vla.policy import PolicyContext

    suites = resolve_suites(OmegaConf.to_object(cfg.suite) if OmegaConf.is_list(cfg.suite) else str(cfg.suite))
    opts = cfg.policy_options
    context = PolicyContext(device=opts.device, seed=opts.seed, unnorm_key=opts.unnorm_key)
    specs = [OmegaConf.to_object(s) if OmegaConf.is_config(s) else str(s) for s in _as_list(cfg.policy)]
    t0 = time.perf_counter()
    reports = run_libero(specs, _libero_settings(cfg), suites=suites, out_dir=out_dir, context=context,
                         shard=cfg.shard, config=OmegaConf.to_container(cfg, resolve=True))
    _print_libero_table(reports)
    logger.info("done in %.1f s; results: %s", time.perf_counter() - t0, out_dir)
    return reports


def merge_libero(cfg: DictConfig, out_dir: Path) -> dict:
    """`merge=[dirs]`: recombine the shards of one LIBERO run into `out_dir` (sim_envs.libero.runner.merge_runs)."""
    from sim_envs.libero.runner import merge_runs

    dirs = [Path(str(d)) for d in _as_list(cfg.merge)]
    reports = merge_runs(dirs, out_dir, config=OmegaConf.to_container(cfg, resolve=True))
    _print_libero_table(reports)
    logger.info("merged %s into %s", [str(d) for d in dirs], out_dir)
    return reports


def _print_libero_table(reports: dict) -> None:
    from rich.table import Table

    from sim_envs.results import format_rate

    table = Table(title="LIBERO success rate [Wilson 95% CI] (successes/episodes)")
    for col in ("policy", "suite", "success", "worst task", "errors"):
        table.add_column(col, no_wrap=True)
    for name, rep in reports.items():
        for suite, r in rep["suites"].items():
            worst = min(r["per_task"].items(), key=lambda kv: kv[1]["success_rate"])
            table.add_row(name, suite, format_rate(r), f"{worst[0][:40]} {worst[1]['success_rate']:.2f}",
                          str(r["n_errors"]))
        mean = rep["standard_mean"]
        if len(mean["suites"]) > 1:
            label = "standard mean" + ("" if mean["complete"] else f" ({len(mean['suites'])} of 4 suites)")
            table.add_row(name, label, format_rate(mean), "", str(mean["n_errors"]))
        if rep.get("budget_overridden"):
            table.add_row(name, "[red]step budget overridden: not the standard protocol[/red]", "", "", "")
    _print(table)


def _run_language(cfg: DictConfig, out_dir: Path, tasks, levels, seeds, context, policies, settings) -> dict:
    """`protocol=language`: swap, paraphrase and blind runs of every policy; language.json, a table, a plot."""
    from dataclasses import replace

    from sim_envs.language_eval import language_tasks, plot_language, run_language_protocol, summarize_language
    from sim_envs.results import write_results
    from vla.policy import parse_policy_spec, policy_source

    if len(levels) != 1:
        raise ValueError(f"protocol=language runs at one DR level, got levels={levels}; pick one with dr=<level>")
    if _as_list(cfg.tasks) == ["all"]:
        tasks = language_tasks()
    blind = {}  # a second copy of each policy (fixed instruction): built only when asked for (a 7B is 15 GB)
    for spec in _as_list(cfg.policy) if "blind" in list(cfg.language.conditions) else ():
        parsed = parse_policy_spec(OmegaConf.to_object(spec) if OmegaConf.is_config(spec) else str(spec))
        options = {**parsed.options, "instruction": cfg.language.blind_instruction, "name": parsed.name}
        blind[parsed.name] = policy_source(replace(parsed, options=options), context)[1]
    t0 = time.perf_counter()
    results = run_language_protocol(policies, blind, tasks, levels[0], seeds, settings,
                                    conditions=list(cfg.language.conditions),
                                    swap_targets=OmegaConf.to_container(cfg.language, resolve=True).get("swap_targets"))
    for condition, by_policy in results.items():
        write_results(by_policy, out_dir / condition, config=OmegaConf.to_container(cfg, resolve=True))
    report = summarize_language(results)
    _write_report(out_dir, "language", report, plot_language, cfg.plot)
    _print_language_table(report)
    logger.info("done in %.1f s; results: %s", time.perf_counter() - t0, out_dir)
    return {"results": results, "report": report}


def _run_robustness(cfg: DictConfig, out_dir: Path, task_ids, seeds, policies, settings) -> dict:
    """`protocol=robustness`: every policy at nominal, each dimension x magnitude and the combined levels."""
    from sim_envs.evaluation import evaluate_policies, write_outputs
    from sim_envs.robustness_eval import plan_robustness, plot_robustness, summarize_robustness

    dims = None if _as_list(cfg.robustness.dimensions) == ["all"] else [str(d) for d in _as_list(cfg.robustness.dimensions)]
    specs, levels = plan_robustness(task_ids, seeds, dims, [int(m) for m in cfg.robustness.magnitudes],
                                    [str(c) for c in cfg.robustness.combined])
    logger.info("robustness: %d policies x %d tasks x %d levels x %d seeds = %d episodes", len(policies),
                len(task_ids), len(levels), len(specs) // (len(task_ids) * len(levels)), len(specs) * len(policies))
    t0 = time.perf_counter()
    results = evaluate_policies(policies, specs, settings)
    write_outputs(results, out_dir, config=OmegaConf.to_container(cfg, resolve=True), levels=list(levels), plot=False)
    report = summarize_robustness(results)
    _write_report(out_dir, "robustness", report, plot_robustness, cfg.plot)
    _print_robustness_table(report)
    logger.info("done in %.1f s; results: %s", time.perf_counter() - t0, out_dir)
    return {"results": results, "report": report}


def _print_robustness_table(report: dict) -> None:
    from rich.table import Table

    table = Table(title="robustness: success [Wilson 95%] and ratio to nominal, one dimension at a time")
    for col in ("policy", "dimension", "small", "middle", "large"):
        table.add_column(col, no_wrap=True)
    for name, entry in report.items():
        n = entry["nominal"]
        table.add_row(name, "nominal", f"{n['success_rate']:.2f} ({n['n_success']}/{n['n_episodes']})", "", "")
        for dim, rows in entry["dimensions"].items():
            cells = {r["magnitude"]: f"{r['success_rate']:.2f} (x{r['ratio_to_nominal']:.2f})"
                     if r["ratio_to_nominal"] is not None else f"{r['success_rate']:.2f}" for r in rows}
            table.add_row(name, dim, *(cells.get(m, "") for m in (1, 2, 3)))
        for lv, r in entry["combined"].items():
            ratio = f" (x{r['ratio_to_none']:.2f} of none)" if r.get("ratio_to_none") is not None else ""
            table.add_row(name, f"dr={lv}", f"{r['success_rate']:.2f}{ratio}", "", "")
    _print(table)


def _print_language_table(report: dict) -> None:
    from rich.table import Table

    table = Table(title="language following: success on the named target [Wilson 95%], wrong-target rate")
    for col in ("policy", "task", "condition", "success", "wrong target", "chance"):
        table.add_column(col, no_wrap=True)
    for name, entry in report.items():
        for condition in ("swap", "paraphrase", "blind"):
            for task, r in entry.get(condition, {}).get("per_task", {}).items():
                lo, hi = r["ci95"]
                table.add_row(name, task.split("/")[-1].rsplit("-v", 1)[0], condition,
                              f"{r['success_rate']:.2f} [{lo:.2f}, {hi:.2f}] ({r['n_success']}/{r['n_episodes']})",
                              f"{r['wrong_target_rate']:.2f}", f"{r['chance']:.2f}")
    _print(table)


def _print(table) -> None:
    """Print a rich table to stderr; in logs and CI (no terminal) do not wrap it at 80 columns."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = 240
    console.print(table)


def _write_report(out_dir: Path, name: str, report: dict, plot, enabled: bool) -> None:
    """`<name>.json` (and `<name>.png` through `plot(report, path)` when `enabled`) of a protocol's report."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    if enabled:
        plot(report, out_dir / f"{name}.png")


def _print_table(results, levels) -> None:
    from rich.table import Table

    from sim_envs.results import aggregate, format_rate

    table = Table(title="success rate [Wilson 95% CI] (successes/episodes)")
    table.add_column("policy", no_wrap=True)
    table.add_column("task", no_wrap=True)
    for lv in levels:
        table.add_column(f"dr={lv}", no_wrap=True)
    for name, res in results.items():
        for task in dict.fromkeys(r.task for r in res):
            cells = [format_rate(aggregate([r for r in res if r.task == task and r.dr_level == lv])) for lv in levels]
            table.add_row(name, task.split("/")[-1].rsplit("-v", 1)[0], *cells)
        errors = sum(r.error is not None for r in res)
        if errors:
            table.add_row(name, f"[red]{errors} episodes failed with an error (see episodes.jsonl)[/red]", *[""] * len(levels))
    _print(table)


def main() -> None:
    default_headless_gl()
    register_configs()
    _hint.run(_app)


if __name__ == "__main__":
    main()
