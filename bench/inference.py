"""Inference speed of the VLA policy: KV cache, batching, parallel decoding (tiny config, CPU, one run).

    python bench/inference.py                 # writes bench/results/inference.json, prints a table
    python bench/inference.py --gpu-7b        # also the 7B config in bf16 with random weights (needs CUDA)

Each figure is actions per second through `VLAPolicy.act_batch` (processor + model + un-normalization),
median over repeated calls after warm-up; each target is a ratio to a baseline measured in the same run:
- greedy decoding with the KV cache vs recomputing the whole sequence at every step (target >= 2x),
- one batch of 8 observations vs 8 single calls (target >= 4x),
- OFT parallel decoding with chunks of 8 vs autoregressive decoding of single actions (target >= 5x).
The machine is shared with other jobs, so absolute numbers are noisy; the ratios are what is tracked.
Candidate and baseline calls alternate (ABBA order, so neither always runs first); each call is timed by the
wall clock (the targets) and by this process's CPU time (steadier under load: it leaves out the time spent
waiting for a core); the load average before and after is recorded. A per-stage breakdown of one
autoregressive call (CPU time) shows what dominates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "inference.json"


def _observations(n: int, seed: int = 0):
    from vla import Observation

    rng = np.random.default_rng(seed)
    words = ["pick up the red cube", "open the top drawer", "put the spoon in the bowl", "lift the block"]
    return [Observation(images={"primary": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)},
                        instruction=words[i % len(words)]) for i in range(n)]


def _policy(use_cache: bool = True, **overrides):
    from vla.core.statistics import ArrayStatistics, DatasetStatistics
    from vla.model.policy import VLAPolicy
    from vla.model.presets import build_model

    model, processor = build_model("tiny", seed=0, **overrides)
    rng = np.random.default_rng(0)
    stats = DatasetStatistics(action=ArrayStatistics.compute(rng.normal(size=(100, 7)), mask=[True] * 6 + [False]))
    return VLAPolicy(model, processor, norm_stats={"bench": stats.to_dict()}, use_cache=use_cache)


def _actions_per_s(fn, actions_per_call: int, repeats: int, warmup: int = 2) -> dict:
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        _timed(fn, wall, cpu)
    return _summary(wall, cpu, actions_per_call)


def _timed(fn, wall: list, cpu: list) -> None:
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)


def _summary(wall: list[float], cpu: list[float], actions_per_call: int) -> dict:
    med = statistics.median(wall)
    med_cpu = statistics.median(cpu)
    return {"actions_per_s": actions_per_call / med, "median_s_per_call": med,
            "actions_per_cpu_s": actions_per_call / med_cpu, "median_cpu_s_per_call": med_cpu,
            "calls": len(wall), "actions_per_call": actions_per_call}


def _interleaved(fn_a, n_a: int, fn_b, n_b: int, repeats: int, warmup: int = 2) -> tuple[dict, dict]:
    """Alternate candidate and baseline calls (ABBA) so both see the same load on a shared machine."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    wa, ca, wb, cb = [], [], [], []
    for i in range(repeats):
        order = ((fn_a, wa, ca), (fn_b, wb, cb))
        for fn, w, c in (order if i % 2 == 0 else order[::-1]):
            _timed(fn, w, c)
    return _summary(wa, ca, n_a), _summary(wb, cb, n_b)


def _breakdown(policy, observations, repeats: int) -> dict:
    """CPU milliseconds (median) of the stages of one autoregressive `act_batch` call."""
    model, lm = policy.model, policy.model.language_model
    with torch.inference_mode():
        batch = policy.prepare(observations)
        ids, mask = model.ensure_prompt_suffix(batch["input_ids"], batch["attention_mask"])
        px = batch["pixel_values"]
        embeds, mm_mask, _, _ = model.build_multimodal_inputs(ids, mask, px)
        pos = model.position_ids_from_mask(mm_mask)
        n_new = model.config.action_chunk * model.config.action_dim
        from vla.model.decoding import greedy_decode

        stages = {
            "processor (images + prompts)": lambda: policy.prepare(observations),
            "vision towers + projector": lambda: model.project_images(px),
            "decode with KV cache (prefill + steps)": lambda: greedy_decode(lm, embeds, mm_mask, pos, n_new, True),
            "decode without cache (full forward per step)":
                lambda: greedy_decode(lm, embeds, mm_mask, pos, n_new, False),
            "one LLM forward of the prompt (prefill)": lambda: greedy_decode(lm, embeds, mm_mask, pos, 1, True),
            "whole act_batch with KV cache": lambda: policy.act_batch(observations),
        }
        out = {}
        for name, fn in stages.items():
            fn()
            times = []
            for _ in range(repeats):
                c0 = time.process_time()
                fn()
                times.append(time.process_time() - c0)
            out[name] = round(1000 * statistics.median(times), 2)
    out["multimodal sequence length"] = int(embeds.shape[1])
    out["generated tokens"] = n_new
    return out


def bench_cpu(repeats: int, image_size: int) -> tuple[dict, list]:
    obs1 = _observations(1)
    obs8 = _observations(8, seed=1)
    cached = _policy(use_cache=True, image_size=image_size)
    uncached = _policy(use_cache=False, image_size=image_size)
    parallel = _policy(decoding="parallel", action_chunk=8, image_size=image_size)
    pairs = [
        ("greedy with KV cache vs without (batch 1)", 2.0,
         "autoregressive_kv_cache_b1", lambda: cached.act_batch(obs1), 1,
         "autoregressive_no_cache_b1", lambda: uncached.act_batch(obs1), 1),
        ("batch 8 vs 8 single calls", 4.0,
         "autoregressive_kv_cache_batch8", lambda: cached.act_batch(obs8), 8,
         "autoregressive_kv_cache_8_single_calls", lambda: [cached.act(o) for o in obs8], 8),
        ("parallel decoding chunk 8 vs autoregressive (batch 1)", 5.0,
         "parallel_chunk8_b1", lambda: parallel.act_batch(obs1), 8,
         "autoregressive_kv_cache_b1_vs_parallel", lambda: cached.act_batch(obs1), 1),
    ]
    runs, targets = {}, []
    for name, target, cand, fa, na, base, fb, nb in pairs:
        runs[cand], runs[base] = _interleaved(fa, na, fb, nb, repeats)
        ratio = runs[cand]["actions_per_s"] / runs[base]["actions_per_s"]
        cpu_ratio = runs[cand]["actions_per_cpu_s"] / runs[base]["actions_per_cpu_s"]
        targets.append({"name": name, "value": round(ratio, 2), "baseline": 1.0, "target": target,
                        "met": bool(ratio >= target), "candidate": cand, "baseline_run": base,
                        "candidate_actions_per_s": round(runs[cand]["actions_per_s"], 2),
                        "baseline_actions_per_s": round(runs[base]["actions_per_s"], 2),
                        "cpu_time_ratio": round(cpu_ratio, 2)})
    runs["breakdown_cpu_ms_batch1"] = _breakdown(cached, obs1, repeats)
    runs["breakdown_cpu_ms_batch8"] = _breakdown(cached, obs8, repeats)
    return runs, targets


def bench_model_level(repeats: int, preset: str = "openvla_7b", device: str = "cuda",
                      dtype: torch.dtype = torch.bfloat16) -> dict:
    """A preset with random weights, synthetic prompts (no tokenizer needed): actions/s and peak memory.

    Used for the 7B config in bf16 on a GPU (`--gpu-7b`); the same code runs the tiny preset on the CPU in
    the test suite's smoke check.
    """
    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.presets import build_preset

    cuda = device.startswith("cuda")
    out = {}
    for label, overrides, batch in (("autoregressive_b1", {}, 1), ("autoregressive_b8", {}, 8),
                                    ("parallel_chunk8_b1", {"decoding": "parallel", "action_chunk": 8}, 1)):
        config, _ = build_preset(preset, **overrides)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                model = VLAForActionPrediction(config).eval()
        finally:
            torch.set_default_dtype(previous)
        suffix = config.prompt_suffix_token_id if config.prompt_suffix_token_id is not None else 3
        prompt = torch.randint(3, config.action_token_begin_id, (batch, 20), device=device)
        prompt[:, 0], prompt[:, -1] = config.bos_token_id, suffix
        if config.decoding == "parallel":
            slots = torch.full((batch, config.action_chunk * config.action_dim), config.pad_token_id, device=device)
            prompt = torch.cat([prompt, slots], dim=1)
        s = config.image_size
        px = torch.randn(batch, 6, s, s, device=device, dtype=dtype)

        def call():
            model.predict_normalized(prompt, px, torch.ones_like(prompt))
            if cuda:
                torch.cuda.synchronize()

        out[label] = _actions_per_s(call, config.action_chunk * batch, repeats)
        if cuda:
            out[label]["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        del model
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: least disturbed by load)")
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[112, 224],
                        help="model input sizes: 112 is the tiny preset's own (64 patch tokens), 224 gives "
                             "OpenVLA's 256 patch tokens per image")
    parser.add_argument("--gpu-7b", action="store_true", help="also measure the 7B config on CUDA")
    parser.add_argument("--gpu-7b-only", action="store_true",
                        help="measure only the 7B config on CUDA and update `gpu_7b_bf16` in --out, keeping the CPU figures")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.gpu_7b_only:
        _update_gpu_only(args.out, args.repeats)
        return
    torch.set_num_threads(args.threads)
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.time()
    runs, targets = {}, []
    for size in args.image_sizes:
        r, tg = bench_cpu(args.repeats, size)
        runs[f"image_size_{size}"] = r
        targets += [dict(x, name=f"{x['name']} [tiny, {size} px: {(size // 14) ** 2} patches]", image_size=size)
                    for x in tg]
    if args.gpu_7b:
        gpu = _gpu_section(args.repeats)
    else:
        gpu = {"status": "not measured (no device): no GPU was available to this run; "
                         "run `python bench/inference.py --gpu-7b` on a CUDA machine"}
    result = {
        "benchmark": "inference",
        "config": "tiny preset (configs/model/tiny.yaml) at each image_size in runs, random weights, 224x224 "
                  "camera images, CPU, float32, batch 1 unless stated",
        "method": "candidate and baseline calls alternate in ABBA order (same load); median wall seconds per "
                  "call (targets) and median process CPU seconds per call (cpu_time_ratio); warm-up 2 calls; "
                  "VLAPolicy.act_batch end to end (processor, towers, projector, decoding, un-normalization)",
        "torch_threads": args.threads,
        "load_average_1_5_15_min": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "note": "measured under load: the 2-core machine is shared with other jobs (see load_average); ratios are "
                "from the same run. Reading the breakdowns: the processor, the vision towers and the prompt's "
                "prefill are done once per call with or without the KV cache, and a one-token decode step of this "
                "2-layer, 128-wide Llama costs mostly PyTorch per-op dispatch, so the cache saves only the extra "
                "compute of re-running the prompt (large at 224 px, small at 112 px). On one thread a batch of 8 "
                "saves only per-call overhead: the compute-bound stages (towers, prefill) grow with the batch.",
        "wall_s": round(time.time() - t0, 1),
        "runs": runs,
        "targets": targets,
        "gpu_7b_bf16": gpu,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _print_table(runs, targets)


def _gpu_section(repeats: int) -> dict:
    import datetime

    if not torch.cuda.is_available():
        raise SystemExit("--gpu-7b needs a CUDA device")
    return {"status": "measured", "device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "date": datetime.date.today().isoformat(), "repeats": repeats, **bench_model_level(repeats)}


def _update_gpu_only(out: Path, repeats: int) -> None:
    result = json.loads(out.read_text()) if out.is_file() else {"benchmark": "inference", "targets": []}
    result["gpu_7b_bf16"] = _gpu_section(repeats)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["gpu_7b_bf16"], indent=2))


def _print_table(runs: dict, targets: list) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="VLA inference (tiny, CPU)")
    for col in ("run", "actions/s", "s/call", "CPU s/call"):
        t.add_column(col)
    b = Table(title="where the time goes (CPU ms, median)")
    for col in ("stage", "batch 1", "batch 8"):
        b.add_column(col)
    for size, group in runs.items():
        for name, r in group.items():
            if "actions_per_s" in r:
                t.add_row(f"{size}: {name}", f"{r['actions_per_s']:.2f}", f"{r['median_s_per_call']:.4f}",
                          f"{r['median_cpu_s_per_call']:.4f}")
        b1, b8 = group.get("breakdown_cpu_ms_batch1", {}), group.get("breakdown_cpu_ms_batch8", {})
        for stage in b1:
            b.add_row(f"{size}: {stage}", str(b1[stage]), str(b8.get(stage, "")))
    g = Table(title="targets")
    for col in ("target", "ratio", "CPU-time ratio", "goal", "met"):
        g.add_column(col)
    for x in targets:
        g.add_row(x["name"], f"{x['value']:.2f}x", f"{x['cpu_time_ratio']:.2f}x", f">= {x['target']}x",
                  "yes" if x["met"] else "NO")
    Console().print(t, b, g)

if __name__ == "__main__":
    main()
