"""`vla-eval suite=...`: LIBERO suites run by worker processes in LIBERO's venv, the policy served from here.

    report = run_libero({"vla": "outputs/train/final"}, LiberoConfig(), suites=resolve_suites("libero_spatial"),
                        out_dir=Path("outputs/eval/run"), context=PolicyContext())
    merged = merge_runs([Path("outputs/eval/shard0"), Path("outputs/eval/shard1")], Path("outputs/eval/all"))

Flow per policy and suite: read the suite's tasks (`worker --describe`, in the LIBERO venv), plan the episodes
(tasks x initial states; `shard=i/n` keeps the i-th of n equal contiguous blocks), build the policy with the
suite's statistics key, wrap it in `LiberoPolicyAdapter` (image and state conventions), serve it on loopback
(`vla.serving.policy_server`), start `workers` LIBERO processes on contiguous blocks (a worker builds each
task's env once), follow their result lines, and write:

    <out_dir>/<policy>/libero_episodes.jsonl   one line per episode as the worker reported it
    <out_dir>/<policy>/episodes.jsonl, eval_info.json, <out_dir>/summary.json   (sim_envs.results layout:
                                               task = <suite>/<task name>, dr_level = the suite)
    <out_dir>/<policy>/libero.json             per suite and per task: rates with Wilson 95% intervals,
                                               the standard-suite mean, conventions, timings
    <out_dir>/videos/<suite>/*.mp4             the first `videos_per_task` initial states of each task
    <out_dir>/workers/                         job files, result lines and logs of the workers
    <out_dir>/shard.json                       (sharded runs) which block of which plan; `merge_runs` checks it

An episode that a dead worker never finished is recorded as a failure with the worker's last log lines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from sim_envs.libero.conventions import Conventions, LiberoConventions, LiberoPolicyAdapter, resolve
from sim_envs.libero.expert import LiberoExpertPolicy  # also registers the policy kind libero_expert
from sim_envs.libero.suites import INITIAL_STATES, RESOLUTION, STANDARD_SUITES, WAIT_STEPS, Suite
from sim_envs.libero.venv import WorkerEnvironment, libero_python, unavailable_reason
from sim_envs.results import EpisodeResult, aggregate, safe_name, write_json, write_results
from vla.core.types import Policy

logger = logging.getLogger(__name__)


@dataclass
class LiberoConfig:
    """`libero.*` of `vla-eval suite=...` (the suite itself is `suite=`, sharding `shard=`)."""

    tasks: Any = "all"  # task indices of each suite, e.g. [0, 3], or "all"
    episodes: Any = INITIAL_STATES  # initial states per task: N (the first N) or a list of state indices
    workers: int = 1  # LIBERO processes sharing the policy server (about one core and 1.5 GB each)
    max_steps: Any = None  # override the suite's step budget (smoke runs; the results record it)
    wait_steps: int = WAIT_STEPS  # no-op steps before the policy acts
    resolution: int = RESOLUTION  # render size of both cameras
    seed: int = 0  # env.seed before every episode (the reference seeds 0)
    videos_per_task: int = 1  # mp4s of the first N initial states of each task (0: none)
    video_fps: float = 20.0  # LIBERO's control rate
    policy_timeout_s: float = 300.0  # one policy query (a 7B on a CPU takes tens of seconds)
    python: Any = None  # LIBERO interpreter (None: $VLA_LIBERO_PYTHON, else .venv-libero/bin/python)
    record: Any = None  # a directory: the workers save every episode's steps there (npz; vla-collect suite=...)
    conventions: LiberoConventions = field(default_factory=LiberoConventions)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"libero.workers={self.workers} must be >= 1")
        if self.wait_steps < 0 or self.videos_per_task < 0:
            raise ValueError("libero.wait_steps and libero.videos_per_task must be >= 0")
        if self.max_steps is not None and int(self.max_steps) < 1:
            raise ValueError(f"libero.max_steps={self.max_steps} must be >= 1 (or null: the suite's budget)")


@dataclass(frozen=True)
class Planned:
    """One episode of the plan: a suite's task and one of its fixed initial states."""

    suite: str
    task_index: int
    task: str
    init_index: int


# --------------------------------------------------------------------------------------------------- planning
def describe_suite(suite: Suite, python: Path, workdir: Path, env: Mapping[str, str]) -> dict:
    """The suite's tasks as the LIBERO venv sees them (`worker --describe`); errors carry its stderr."""
    out = workdir / f"describe_{suite.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([str(python), "-m", "sim_envs.libero.worker", "--describe", suite.name, str(out)],
                       capture_output=True, text=True, env=dict(env), timeout=300)
    if r.returncode != 0 or not out.is_file():
        tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-8:])
        raise RuntimeError(f"{python} could not read LIBERO suite {suite.name!r} (exit {r.returncode}):\n{tail}")
    return json.loads(out.read_text())


def _select(values: Any, available: Sequence[int], what: str, names: Sequence[str] = ()) -> list[int]:
    if values in (None, "all"):
        return list(available)
    if isinstance(values, int) and not isinstance(values, bool):
        if what == "initial states":  # N: the first N states
            if not 1 <= values <= len(available):
                raise ValueError(f"libero.episodes={values}: each task has {len(available)} initial states")
            return list(available[:values])
        values = [values]
    out = []
    for v in values if isinstance(values, (list, tuple)) else [values]:
        if isinstance(v, str) and v in names:
            v = list(names).index(v)
        if not isinstance(v, int) or v not in available:
            raise ValueError(f"libero: {v!r} is not one of the {what} ({list(available)[0]}..{list(available)[-1]}"
                             + (f" or a task name such as {names[0]!r}" if names else "") + ")")
        out.append(int(v))
    return list(dict.fromkeys(out))


def plan_suite(description: dict, tasks: Any = "all", episodes: Any = INITIAL_STATES) -> list[Planned]:
    """Tasks x initial states of one described suite, task-major (the reference's order)."""
    rows = description["tasks"]
    task_ids = _select(tasks, [t["index"] for t in rows], "task indices", [t["name"] for t in rows])
    out = []
    for i in task_ids:
        states = _select(episodes, list(range(rows[i]["initial_states"])), "initial states")
        out += [Planned(description["suite"], i, rows[i]["name"], k) for k in states]
    return out


def parse_shard(shard: str | None) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n; None -> (0, 1)."""
    if shard in (None, ""):
        return 0, 1
    try:
        i, n = (int(x) for x in str(shard).split("/"))
    except ValueError:
        raise ValueError(f"shard={shard!r}: expected i/n, e.g. shard=0/4 (the first of four)") from None
    if not 0 <= i < n:
        raise ValueError(f"shard={shard!r}: need 0 <= i < n")
    return i, n


def blocks(items: Sequence, n: int) -> list[list]:
    """`items` cut into n contiguous blocks whose sizes differ by at most one (some may be empty)."""
    q, r = divmod(len(items), n)
    out, start = [], 0
    for j in range(n):
        end = start + q + (j < r)
        out.append(list(items[start:end]))
        start = end
    return out


def plan_hash(plan: Sequence[Planned]) -> str:
    return hashlib.sha1(json.dumps([[p.suite, p.task_index, p.init_index] for p in plan]).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------- policies
def suite_unnorm_key(spec, suite: Suite, conventions: LiberoConventions, context) -> str | None:
    """The statistics key for this suite: an explicit one (spec, `libero.conventions.unnorm_key`, the command's
    `policy_options.unnorm_key`) or, for a checkpoint, `<suite>` or `<suite>_no_noops` as the reference picks."""
    from vla.policy import parse_policy_spec

    parsed = parse_policy_spec(spec)
    explicit = parsed.options.get("unnorm_key") or (None if conventions.unnorm_key == "auto" else conventions.unnorm_key)
    explicit = explicit or context.unnorm_key
    if explicit or parsed.kind != "vla" or not parsed.options.get("path"):
        return explicit
    from vla.model.policy import statistics_keys

    keys = statistics_keys(parsed.options["path"])
    for key in suite.unnorm_keys:
        if key in keys:
            return key
    raise ValueError(f"checkpoint {parsed.options['path']} has no statistics for {suite.name}: looked for "
                     f"{list(suite.unnorm_keys)}, it carries {keys}. Name one with libero.conventions.unnorm_key=<key> "
                     "(a wrong key un-normalizes every action wrongly)")


class PolicyCache:
    """Builds each policy spec once; a checkpoint moves to another suite's statistics without reloading."""

    def __init__(self, context) -> None:
        self.context = context
        self._built: dict[str, tuple[str, Any, str | None]] = {}

    def get(self, spec, key: str | None):
        from vla.policy import parse_policy_spec, policy_source

        text = str(parse_policy_spec(spec))
        if text in self._built:
            name, source, old = self._built[text]
            if old == key:
                return name, source
            if hasattr(source, "with_unnorm_key") and key is not None:  # a bare VLAPolicy
                source = source.with_unnorm_key(key)
                self._built[text] = (name, source, key)
                return name, source
        name, source = policy_source(spec, replace(self.context, unnorm_key=key))
        self._built[text] = (name, source, key)
        return name, source


# --------------------------------------------------------------------------------------------------- running
def run_libero(policies: Sequence, cfg: LiberoConfig, *, suites: Sequence[Suite], out_dir: Path, context,
               shard: str | None = None, config: dict | None = None, progress: bool = True) -> dict:
    """Run every policy spec on every suite; write the outputs (module docstring); return {name: report}."""
    from tqdm.auto import tqdm

    reason = unavailable_reason(cfg.python)
    if reason:
        raise FileNotFoundError(reason)
    python = libero_python(cfg.python)
    out_dir = Path(out_dir)
    shard_i, shard_n = parse_shard(shard)
    cache = PolicyCache(context)
    reports: dict[str, dict] = {}
    all_rows: dict[str, list[dict]] = {}
    with WorkerEnvironment() as wenv:
        descriptions = {s.name: describe_suite(s, python, out_dir / "workers", wenv.variables) for s in suites}
        full_plan = [p for s in suites for p in plan_suite(descriptions[s.name], cfg.tasks, cfg.episodes)]
        mine = blocks(full_plan, shard_n)[shard_i]
        if not mine:
            raise ValueError(f"shard={shard}: the plan has only {len(full_plan)} episodes; use at most that many shards")
        logger.info("LIBERO: %d suites, %d episodes planned%s; %d policies; LIBERO python %s", len(suites),
                    len(full_plan), f", shard {shard_i}/{shard_n}: {len(mine)} of them" if shard_n > 1 else "",
                    len(policies), python)
        for spec in policies:
            rows, conventions_by_suite, name = [], {}, None
            bar = tqdm(total=len(mine), desc=f"LIBERO {spec}", unit="ep", disable=not progress)
            t0 = time.perf_counter()
            for suite in suites:
                todo = [p for p in mine if p.suite == suite.name]
                if not todo:
                    continue
                key = suite_unnorm_key(spec, suite, cfg.conventions, context)
                name, source = cache.get(spec, key)
                suite_rows, conv = _run_suite(name, source, suite, todo, descriptions[suite.name], cfg, python,
                                              wenv.variables, out_dir, key, bar)
                rows += suite_rows
                conventions_by_suite[suite.name] = {**conv.to_dict(), "unnorm_key": key}
            bar.close()
            if name is None:
                continue
            meta = {"conventions": conventions_by_suite, "eval_s": time.perf_counter() - t0,
                    "max_steps": {s.name: int(cfg.max_steps or s.max_steps) for s in suites},
                    "budget_overridden": cfg.max_steps is not None, "wait_steps": cfg.wait_steps,
                    "plan": {"n_episodes": len(full_plan), "hash": plan_hash(full_plan)},
                    "shard": {"index": shard_i, "count": shard_n, "n_episodes": len(mine)}}
            reports[name] = write_policy_outputs(name, rows, out_dir, meta)
            all_rows[name] = rows
        write_results({n: [episode_result(n, r) for r in rs] for n, rs in all_rows.items()}, out_dir,
                      eval_s={n: float(reports[n]["eval_s"]) for n in all_rows}, config=config)
        if reports and shard_n > 1:
            write_json({"shard": [shard_i, shard_n], "plan_hash": plan_hash(full_plan),
                        "plan_episodes": len(full_plan), "suites": [s.name for s in suites],
                        "policies": list(reports), "config": config}, out_dir / "shard.json")
    return reports


def _run_suite(name, source, suite: Suite, todo: list[Planned], description: dict, cfg: LiberoConfig,
               python: Path, env: Mapping[str, str], out_dir: Path, key, bar) -> tuple[list[dict], Conventions]:
    from vla.serving.policy_server import PolicyServer

    n_workers = min(cfg.workers, len(todo))
    instances = [source] * n_workers if isinstance(source, Policy) else [source() for _ in range(n_workers)]
    from sim_envs.baselines import expert_of

    if expert_of(instances[0]) is not None:
        raise ValueError(f"policy {name}: the scripted expert of our own tasks reads our simulator's state and cannot "
                         "act in LIBERO; its LIBERO counterpart is policy=libero_expert (libero_spatial, libero_object)")
    expert = isinstance(instances[0], LiberoExpertPolicy)
    conv = resolve(cfg.conventions, instances[0])
    if getattr(getattr(instances[0], "config", None), "use_proprio", False) and conv.state == "none":
        raise ValueError(f"policy {name} reads proprio but libero.conventions.state=none; use state=oft8")
    # One server when the workers share one policy instance (its lock serializes their queries), one per
    # worker for per-episode-stateful policies built from a factory; none for the expert, which acts in the worker.
    servers = [] if expert else [PolicyServer(LiberoPolicyAdapter(p, conv)).start()
                                 for p in (instances[:1] if isinstance(source, Policy) else instances)]
    wdir = out_dir / "workers"
    wdir.mkdir(parents=True, exist_ok=True)
    video_states = list(range(cfg.videos_per_task))
    jobs, procs = [], []
    try:
        for j, block in enumerate(blocks(todo, n_workers)):
            stem = f"{safe_name(name)}_{suite.name}_w{j}"
            tasks: dict[int, list[int]] = {}
            for p in block:
                tasks.setdefault(p.task_index, []).append(p.init_index)
            srv = servers[j % len(servers)] if servers else None
            job = {"host": srv.host if srv else None, "port": srv.port if srv else None, "expert": expert,
                   "suite": suite.name, "instruction": suite.instruction,
                   "tasks": [{"index": t, "episodes": ks} for t, ks in tasks.items()],
                   "max_steps": int(cfg.max_steps or suite.max_steps), "wait_steps": int(cfg.wait_steps),
                   "execute_steps": conv.execute_steps, "gripper": conv.gripper, "resolution": int(cfg.resolution),
                   "seed": int(cfg.seed), "policy_timeout_s": float(cfg.policy_timeout_s),
                   "video_dir": str(out_dir / "videos" / suite.name), "video_states": video_states,
                   "video_fps": float(cfg.video_fps), "results": str(wdir / f"{stem}.jsonl"),
                   "record": str(cfg.record) if cfg.record else None}
            Path(job["results"]).unlink(missing_ok=True)
            (wdir / f"{stem}.json").write_text(json.dumps(job, indent=2))
            log = (wdir / f"{stem}.log").open("w")
            procs.append(subprocess.Popen([str(python), "-m", "sim_envs.libero.worker", str(wdir / f"{stem}.json")],
                                          stdout=log, stderr=subprocess.STDOUT, env=dict(env)))
            log.close()
            jobs.append((job, block, wdir / f"{stem}.log"))
        done = 0
        while True:
            finished = sum(_count_lines(Path(job["results"])) for job, _, _ in jobs)
            if finished > done:
                bar.update(finished - done)
                done = finished
            if all(p.poll() is not None for p in procs):
                break
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
        for srv in servers:
            srv.close()
    rows = []
    for (job, block, log), proc in zip(jobs, procs):
        got = _read_rows(Path(job["results"]))
        seen = {(r["task_index"], r["init_index"]) for r in got}
        missing = [p for p in block if (p.task_index, p.init_index) not in seen]
        if missing:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])[-800:]
            logger.error("LIBERO worker %s exited with code %s before %d episodes: %s", log.stem, proc.returncode,
                         len(missing), tail)
            got += [{"suite": p.suite, "task_index": p.task_index, "task": p.task, "init_index": p.init_index,
                     "instruction": "", "success": False, "steps": 0, "wall_s": 0.0, "video_path": None,
                     "initial_state_hash": "", "policy_queries": 0, "policy_s": 0.0, "env_s": 0.0,
                     "error": f"worker exited with code {proc.returncode} before this episode: {tail}"}
                    for p in missing]
        rows += got
    order = {(p.task_index, p.init_index): i for i, p in enumerate(todo)}
    rows.sort(key=lambda r: order[(r["task_index"], r["init_index"])])
    for r in rows:
        r["unnorm_key"] = key
    return rows, conv


def _count_lines(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.is_file() else 0


def _read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


# --------------------------------------------------------------------------------------------------- outputs
def episode_result(name: str, row: dict) -> EpisodeResult:
    """A worker's row as a `sim_envs.results.EpisodeResult` (task = suite/task, dr_level = suite, seed = state)."""
    return EpisodeResult(policy=name, task=f"{row['suite']}/{row['task']}", dr_level=row["suite"],
                         seed=int(row["init_index"]), success=bool(row["success"]), steps=int(row["steps"]),
                         sum_reward=float(row["success"]), max_reward=float(row["success"]),
                         instruction=row.get("instruction", ""), error=row.get("error"),
                         video_path=row.get("video_path"), initial_state_hash=row.get("initial_state_hash", ""),
                         wall_s=float(row.get("wall_s", 0.0)))


def summarize(rows: Sequence[dict]) -> dict:
    """Per suite and per task: rates with Wilson 95% intervals; the standard-suite mean; timings."""
    results = [episode_result("p", r) for r in rows]
    suites: dict[str, Any] = {}
    for suite in dict.fromkeys(r["suite"] for r in rows):
        sr = [r for r in rows if r["suite"] == suite]
        agg = _rates(aggregate([x for x in results if x.dr_level == suite]))
        per_task = {}
        for task in dict.fromkeys(r["task"] for r in sr):
            tr = [x for x in results if x.task == f"{suite}/{task}"]
            per_task[task] = {**_rates(aggregate(tr)), "instruction": tr[0].instruction,
                              "task_index": next(r["task_index"] for r in sr if r["task"] == task)}
        steps = sum(int(r["steps"]) for r in sr)
        env_s = sum(float(r.get("env_s", 0.0)) for r in sr)
        queries = sum(int(r.get("policy_queries", 0)) for r in sr)
        suites[suite] = {**agg, "per_task": per_task, "env_steps": steps,
                         "env_steps_per_s": steps / env_s if env_s else None,
                         "policy_queries": queries,
                         "policy_latency_s": sum(float(r.get("policy_s", 0.0)) for r in sr) / queries if queries else None,
                         "episode_wall_s": sum(float(r.get("wall_s", 0.0)) for r in sr) / len(sr)}
    standard = [s for s in STANDARD_SUITES if s in suites]
    pooled = aggregate([x for x in results if x.dr_level in standard])
    return {"suites": suites,
            "standard_mean": {"suites": standard, "complete": len(standard) == len(STANDARD_SUITES),
                              "mean_of_suite_rates": (sum(suites[s]["success_rate"] for s in standard) / len(standard)
                                                      if standard else None),
                              **_rates(pooled)}}


def _rates(agg: dict) -> dict:
    keys = ("n_episodes", "n_success", "success_rate", "ci95", "n_errors", "avg_steps")
    return {k: agg[k] for k in keys}


def write_policy_outputs(name: str, rows: list[dict], out_dir: Path, meta: dict) -> dict:
    """libero_episodes.jsonl and libero.json of one policy; returns the report (the `sim_envs.results` files of
    all policies are written together after, so summary.json lists every one)."""
    pdir = Path(out_dir) / safe_name(name)
    pdir.mkdir(parents=True, exist_ok=True)
    with (pdir / "libero_episodes.jsonl").open("w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    report = {"policy": name, **summarize(rows), **meta}
    write_json(report, pdir / "libero.json")
    return report


def merge_runs(dirs: Sequence[Path], out_dir: Path, config: dict | None = None) -> dict:
    """Recombine the shards of one plan (each dir, or any dir below it, holding a shard.json); checks that every
    shard is there once and no episode twice, then writes the same outputs as an unsharded run."""
    markers = sorted({m.resolve() for d in dirs for m in ([Path(d) / "shard.json"] if (Path(d) / "shard.json").is_file()
                                                          else Path(d).rglob("shard.json"))})
    if not markers:
        raise FileNotFoundError(f"merge: no shard.json under {[str(d) for d in dirs]} (a run with shard=i/n writes one)")
    infos = [(m.parent, json.loads(m.read_text())) for m in markers]
    hashes = {i["plan_hash"] for _, i in infos}
    counts = {i["shard"][1] for _, i in infos}
    if len(hashes) > 1 or len(counts) > 1:
        raise ValueError(f"merge: the shards come from different plans (plan hashes {sorted(hashes)}, shard counts "
                         f"{sorted(counts)}); merge the shards of one command line only")
    n = counts.pop()
    indices = sorted(i["shard"][0] for _, i in infos)
    if indices != list(range(n)):
        missing = sorted(set(range(n)) - set(indices))
        dupes = sorted({i for i in indices if indices.count(i) > 1})
        raise ValueError(f"merge: expected shards 0..{n - 1} once each; missing {missing}, repeated {dupes}")
    reports, all_rows = {}, {}
    policies = list(dict.fromkeys(p for _, i in infos for p in i["policies"]))
    for name in policies:
        rows, metas = [], []
        for d, _ in infos:
            rows += _read_rows(d / safe_name(name) / "libero_episodes.jsonl")
            metas.append(json.loads((d / safe_name(name) / "libero.json").read_text()))
        keys = [(r["suite"], r["task_index"], r["init_index"]) for r in rows]
        if len(set(keys)) != len(keys):
            raise ValueError(f"merge: policy {name} has episodes in more than one shard")
        plan_n = infos[0][1]["plan_episodes"]
        if len(keys) != plan_n:
            raise ValueError(f"merge: policy {name} has {len(keys)} episodes, the plan has {plan_n}")
        meta = {k: metas[0][k] for k in ("conventions", "max_steps", "budget_overridden", "wait_steps", "plan")}
        meta["eval_s"] = sum(m.get("eval_s", 0.0) for m in metas)
        meta["merged_from"] = [str(d) for d, _ in infos]
        reports[name] = write_policy_outputs(name, rows, out_dir, meta)
        all_rows[name] = rows
    write_results({n: [episode_result(n, r) for r in rs] for n, rs in all_rows.items()}, out_dir,
                  eval_s={n: float(reports[n]["eval_s"]) for n in all_rows}, config=config)
    return reports

