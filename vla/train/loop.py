"""The training loop of `vla-train`: one process or several (torchrun), full fine-tuning or LoRA.

    from vla.train import run
    final_dir = run({"data": {"datasets": [{"path": "outputs/data/sim_pick/1.0.0"}]}, "trainer": {"steps": 300}})
    # final_dir: a standalone checkpoint that `VLAPolicy.from_pretrained(final_dir)` loads

Order of one optimizer step: `accumulation` micro-batches (forward under autocast, backward; gradient sync
only on the last), the NaN check (all processes agree), clipping, AdamW, the LR schedule; then logging,
validation and checkpointing on their own periods. A resumed run restores weights, optimizer, scheduler,
RNG states and the loader position, so it continues exactly where the saved run was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from vla.train import checkpoint as ckpt
from vla.train.config import FinetuneMode, Precision, TrainConfig, to_container, to_train_config
from vla.train.errors import NonFiniteLossError
from vla.train.distributed import (
    DistContext,
    any_rank,
    barrier,
    choose_parallelism,
    full_state_dicts,
    init_distributed,
    load_full_state_dicts,
    mean_over_ranks,
    no_gradient_sync,
    shutdown,
    unwrap,
    wrap_model,
)
from vla.train.compat import check_adapter_base, check_data_fits_base
from vla.train.lora import count_parameters, freeze_unused_parameters, prepare_for_mode
from vla.train.metrics import ActionTokenDecoder, MetricSink, Smoothed, output_metrics
from vla.train.optim import build_optimizer, build_scheduler
from vla.train.setup import build_data, build_model, load_adapter_weights, save_model_dir

logger = logging.getLogger(__name__)


def run(cfg: Any) -> Path:
    """Train with `cfg` (a `TrainConfig`, hydra DictConfig or dict); return the final checkpoint directory."""
    cfg = to_train_config(cfg)
    ctx = init_distributed(cfg.trainer.device)
    try:
        return Trainer(cfg, ctx).fit()
    finally:
        shutdown(ctx)


class Trainer:
    def __init__(self, cfg: TrainConfig, ctx: DistContext) -> None:
        self.cfg, self.ctx = cfg, ctx
        t = cfg.trainer
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        self.out = Path(cfg.output_dir)
        self.ckpt_root = self.out / "checkpoints"
        self.micro, self.accum = micro_batching(t.batch_size, t.micro_batch_size, ctx.world_size)
        self.use_bf16 = t.precision == Precision.bf16 or (t.precision == Precision.auto and ctx.device.type == "cuda")

        resume_from = self._find_resume()
        _seed_everything(cfg.seed)

        lora = t.mode == FinetuneMode.lora
        bundle = build_model(cfg.init_from, cfg.model, load_dtype=torch.bfloat16 if (self.use_bf16 and lora) else None,
                             weights_dir=resume_from / "model" if (resume_from is not None and not lora) else None)
        self.processor, self.base_dir = bundle.processor, bundle.base_dir
        if t.mode == FinetuneMode.lora and self.base_dir is None:
            raise ValueError("trainer.mode=lora adapts a pretrained model: set init_from=<checkpoint dir> "
                             "(training from scratch needs trainer.mode=full)")
        model = bundle.model
        from vla.data.loader import Shard

        self.data = build_data(cfg.data, model_config=model.config, processor=self.processor, seed=cfg.seed,
                               val_fraction=t.val_fraction, shard=Shard(ctx.rank, ctx.world_size, self.micro))
        if self.base_dir is not None:  # action size, control rate and unnorm_key must fit the base
            check_data_fits_base(self.base_dir, model.config, self.data.norm_stats, self.data.control_hz,
                                 check_rate=t.check_control_rate)
        # The checkpoint carries the statistics of the data it was trained on, under their unnorm_keys, so a
        # model fine-tuned on a new robot un-normalizes with that robot's statistics (the base's stay in the base),
        # and (control_hz.json beside it) the control rate of each dataset, which a fine-tune from it is checked against.
        model.config.norm_stats = self._statistics_dict()
        self.decoder = ActionTokenDecoder.from_config(model.config)
        self.parallel_decoding = model.config.decoding == "parallel"
        self.action_loss_weights = None  # (7,) per-dimension weights of the L1 head's loss, None = plain L1
        if t.gripper_loss_weight != 1.0:
            if model.config.action_head != "l1":
                raise ValueError(f"trainer.gripper_loss_weight={t.gripper_loss_weight} weighs the L1 head's loss; "
                                 f"this model predicts with action_head={model.config.action_head!r} (set it to 1.0)")
            w = torch.ones(model.config.action_dim)
            w[-1] = t.gripper_loss_weight
            self.action_loss_weights = w / w.mean()

        model = prepare_for_mode(model, t.mode, t.lora)
        if resume_from is not None and lora:
            check_adapter_base(resume_from / "adapter", self.base_dir)
            load_adapter_weights(model, resume_from / "adapter")
        grad_ckpt = t.gradient_checkpointing if t.gradient_checkpointing is not None else ctx.device.type == "cuda"
        if grad_ckpt:
            unwrap_hf(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.to(ctx.device)
        freeze_unused_parameters(model, self.processor, unwrap_hf(model).config)
        self.trainable, self.total = count_parameters(model)
        self.parallelism = choose_parallelism(t.parallelism.value, self.total, t.fsdp_min_params)
        self.model = wrap_model(model, ctx, self.parallelism)
        self.optimizer = build_optimizer(self.model, t)
        self.scheduler = build_scheduler(self.optimizer, t)
        self.step = 0
        self.history: list[dict] = []
        if resume_from is not None:
            self._restore(resume_from)
        self.sink = None
        if ctx.is_main:
            self.sink = MetricSink(self.out / "logs", tensorboard=t.tensorboard, wandb=t.wandb,
                                   wandb_project=t.wandb_project, config=self._config_record())
            self._log_setup(resume_from)

    # ------------------------------------------------------------------ setup helpers

    def _find_resume(self) -> Path | None:
        r = self.cfg.trainer.resume
        if r == "never":
            return None
        if r == "auto":
            return ckpt.latest_checkpoint(self.ckpt_root)
        path = Path(r)
        if not (path / ckpt.TRAINER_STATE).is_file():
            raise FileNotFoundError(f"trainer.resume={r!r} is not a training checkpoint (no {ckpt.TRAINER_STATE}); "
                                    f"use auto, never, or a directory under {self.ckpt_root}")
        return path

    def _restore(self, path: Path) -> None:
        state = ckpt.load_trainer_state(path)
        load_full_state_dicts(self.model, self.optimizer, None, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        rank_state = ckpt.load_rank_state(path, self.ctx.rank, self.ctx.world_size)
        self.data.train.load_state_dict(rank_state["loader"])
        ckpt.restore_rng_state(rank_state["rng"])
        logger.info("resumed from %s at step %d", path, self.step)

    def _config_record(self) -> dict:
        """The resolved config as logged and saved. With `init_from=<dir>` the architecture is the checkpoint's, so
        the (unused) `model` preset is replaced by the model actually trained, not left to mislead a reader."""
        record = to_container(self.cfg)
        if self.data.config is not None:  # what was read: image size, cameras and chunk follow the model
            from dataclasses import asdict

            shaped = self.data.config
            record["data"].update(image_size=shaped.image_size, cameras=list(shaped.cameras),
                                  window=asdict(shaped.window))
        if self.base_dir is not None:
            c = unwrap_hf(self.model).config
            record["model"] = {"from": str(self.base_dir), "image_size": c.image_size, "cameras": list(c.cameras),
                               "decoding": c.decoding, "action_chunk": c.action_chunk,
                               "parameters": self.total}
        return record

    def _log_setup(self, resume_from: Path | None) -> None:
        t = self.cfg.trainer
        logger.info("config:\n%s", json.dumps(self._config_record(), indent=2))
        logger.info(
            "%d process(es) on %s (%s), %s/%s parameters trainable, batch %d = %d micro x %d accumulation x %d "
            "processes, precision %s, train episodes %d, val episodes %d%s",
            self.ctx.world_size, self.ctx.device, self.parallelism if self.ctx.distributed else "single",
            f"{self.trainable:,}", f"{self.total:,}", t.batch_size, self.micro, self.accum, self.ctx.world_size,
            "bf16 autocast" if self.use_bf16 else "fp32", self.data.num_train_episodes, self.data.num_val_episodes,
            f", resuming at step {self.step}" if resume_from else "",
        )

    # ------------------------------------------------------------------ training

    def _autocast(self):
        if not self.use_bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.ctx.device.type, dtype=torch.bfloat16)

    def _micro_batches(self) -> Iterator[dict]:
        """This process's micro-batches, model-ready from the loader: its slice of each global micro-step of
        micro x world samples (the loader's `Shard`), so any number of processes sees the same global batches
        as one process."""
        it = self._train_iter = self.data.train.batches(self.micro)
        for batch in it:
            yield self._to_device(batch)

    def _to_device(self, batch: dict) -> dict:
        return {k: (v.to(self.ctx.device) if torch.is_tensor(v) else v) for k, v in batch.items()}

    def _forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        with self._autocast():
            out = self.model(**batch)
        metrics = output_metrics(out, batch, self.decoder, parallel=self.parallel_decoding)
        loss = out.loss
        if self.action_loss_weights is not None and out.actions is not None:
            err = (out.actions - batch["actions"].to(out.actions.dtype).reshape(out.actions.shape)).abs()
            loss = (err * self.action_loss_weights.to(err)).mean()
        return loss, metrics

    def train_step(self, batches: Iterator[dict]) -> dict[str, float]:
        self.model.train()
        total_loss, agg = 0.0, Smoothed(window=self.accum)
        for i in range(self.accum):
            batch = next(batches)
            last = i == self.accum - 1
            with no_gradient_sync(self.model, self.parallelism, enabled=self.ctx.distributed and not last):
                loss, metrics = self._forward(batch)
                (loss / self.accum).backward()
            total_loss += float(loss.detach()) / self.accum
            agg.add(metrics)
        if any_rank(self.ctx, not math.isfinite(total_loss)):
            self._stop_on_nan(total_loss)
        grad_norm = math.nan
        if self.cfg.trainer.max_grad_norm:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.cfg.trainer.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        out = {"loss": total_loss, **agg.means(), "lr": self.scheduler.get_last_lr()[0]}
        if math.isfinite(grad_norm):
            out["grad_norm"] = grad_norm
        return mean_over_ranks(self.ctx, out)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss / accuracy / L1 over up to `val_batches` batches of the held-out episodes."""
        if self.data.make_val is None:
            return {}
        self.model.eval()
        agg, n = Smoothed(window=10**9), 0
        for batch in self.data.make_val().batches(self.micro):
            if len(batch["input_ids"]) < self.micro:  # whole micro-batches only
                break
            loss, metrics = self._forward(self._to_device(batch))
            agg.add({"loss": float(loss), **metrics})
            n += 1
            if n >= self.cfg.trainer.val_batches:
                break
        self.model.train()
        return mean_over_ranks(self.ctx, agg.means()) if n else {}

    def fit(self) -> Path:
        t = self.cfg.trainer
        batches = self._micro_batches()
        bar = None
        if self.ctx.is_main and t.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=t.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        smooth = Smoothed(window=max(t.log_every, 1))
        t0, samples_seen = time.perf_counter(), 0
        while self.step < t.steps:
            metrics = self.train_step(batches)
            samples_seen += t.batch_size
            smooth.add(metrics)
            if bar is not None:
                bar.update(1)
                m = smooth.means()
                bar.set_postfix(loss=f"{m.get('loss', math.nan):.3f}", acc=f"{m.get('action_accuracy', math.nan):.2f}",
                                l1=f"{m.get('action_l1', math.nan):.3f}")
            if self.ctx.is_main and (self.step % max(t.log_every, 1) == 0 or self.step == t.steps):
                rate = samples_seen / max(time.perf_counter() - t0, 1e-9)
                self.sink.log(self.step, {**smooth.means(), "samples_per_s": rate}, "train")
                self.history.append({"step": self.step, **smooth.means(), "samples_per_s": rate})
                logger.info("step %d: %s", self.step, _fmt(smooth.means()))
            if (t.val_every and self.step % t.val_every == 0) or self.step == t.steps:
                val = self.validate()
                if self.ctx.is_main and val:
                    self.sink.log(self.step, val, "val")
                    self.history.append({"step": self.step, **{f"val_{k}": v for k, v in val.items()}})
                    logger.info("step %d validation: %s", self.step, _fmt(val))
            if (t.save_every and self.step % t.save_every == 0) or self.step == t.steps:
                self.save(ckpt.checkpoint_dir_name(self.step), keep_last=t.keep_last)
            if t.max_train_seconds and any_rank(self.ctx, time.perf_counter() - t0 > t.max_train_seconds):
                logger.warning("stopping at step %d of %d: trainer.max_train_seconds=%s reached", self.step, t.steps,
                               t.max_train_seconds)
                if not (self.ckpt_root / ckpt.checkpoint_dir_name(self.step)).is_dir():
                    val = self.validate()
                    if self.ctx.is_main and val:
                        self.sink.log(self.step, val, "val")
                        self.history.append({"step": self.step, **{f"val_{k}": v for k, v in val.items()}})
                    self.save(ckpt.checkpoint_dir_name(self.step), keep_last=t.keep_last)
                break
        if bar is not None:
            bar.close()
        batches.close()
        if getattr(self, "_train_iter", None) is not None:
            self._train_iter.close()  # stops the loader's worker processes
        final = self.export_final()
        if self.sink is not None:
            self.sink.close()
        return final

    # ------------------------------------------------------------------ saving

    def save(self, name: str, keep_last: int | None) -> Path:
        """Write checkpoint `name` atomically (all processes call it)."""
        msd, osd = full_state_dicts(self.model, self.optimizer, self.ctx)
        tmp = ckpt.tmp_dir_for(self.ckpt_root, name)
        error = None
        if self.ctx.is_main:
            try:
                ckpt.begin_save(self.ckpt_root, name)
            except OSError as e:
                error = e
        barrier(self.ctx)
        if error is None and tmp.is_dir():
            try:
                ckpt.write_rank_state(tmp, self.ctx.rank, {"rng": ckpt.capture_rng_state(),
                                                           "loader": self.data.train.state_dict()})
            except OSError as e:
                error = e
        failed = any_rank(self.ctx, error is not None)
        path = self.ckpt_root / name
        main_error: Exception | None = None
        if self.ctx.is_main:
            if failed:
                ckpt.abort_save(self.ckpt_root, name)
                main_error = ckpt.CheckpointError(f"saving checkpoint {name} failed: {error}; earlier checkpoints are intact")
            else:
                def write_main(d: Path) -> None:
                    self._write_model(d, msd)
                    torch.save({"step": self.step, "optimizer": osd, "scheduler": self.scheduler.state_dict(),
                                "history": self.history, "world_size": self.ctx.world_size}, d / ckpt.TRAINER_STATE)
                    (d / "config.yaml").write_text(_yaml(self._config_record()))
                    (d / "dataset_statistics.json").write_text(json.dumps(self._statistics_dict(), indent=2))
                try:
                    path = ckpt.commit_save(self.ckpt_root, name, write_main, keep_last)
                except ckpt.CheckpointError as e:
                    main_error = e
        if any_rank(self.ctx, main_error is not None):
            raise main_error or ckpt.CheckpointError(f"saving checkpoint {name} failed on process 0")
        barrier(self.ctx)
        return path

    def _statistics_dict(self) -> dict:
        return {key: stats.to_dict() for key, stats in self.data.norm_stats.items()}

    def _write_model(self, d: Path, msd: dict) -> None:
        lora = self.cfg.trainer.mode == FinetuneMode.lora
        save_model_dir(unwrap(self.model), self.processor, msd, d / ("adapter" if lora else "model"),
                       statistics=self._statistics_dict(), lora=lora, base_dir=self.base_dir,
                       control_hz=self.data.control_hz)

    def _stop_on_nan(self, loss: float) -> None:
        """Save the state that produced the non-finite loss (before the update) and stop."""
        step = self.step + 1
        name = f"nan_step_{step:06d}"
        path = self.save(name, keep_last=None)
        raise NonFiniteLossError(
            f"loss is {loss} at step {step}; the weights and optimizer state before this step are saved in {path} "
            "for inspection. Lower trainer.lr, raise trainer.warmup_steps or check the data for bad actions"
        )

    def export_final(self) -> Path:
        """`<output_dir>/final`: a standalone checkpoint VLAPolicy loads (LoRA: merged; adapter beside it)."""
        from vla.train.merge import merge_adapter

        last = self.ckpt_root / ckpt.checkpoint_dir_name(self.step)
        final = self.out / "final"
        if self.ctx.is_main:
            import shutil

            tmp = self.out / ".tmp-final"
            shutil.rmtree(tmp, ignore_errors=True)
            if self.cfg.trainer.mode == FinetuneMode.lora:
                shutil.copytree(last / "adapter", self.out / ".tmp-final-adapter")
                merge_adapter(last / "adapter", tmp, base_dir=self.base_dir)
                _replace_dir(self.out / ".tmp-final-adapter", self.out / "final_adapter")
            else:
                shutil.copytree(last / "model", tmp)
            _replace_dir(tmp, final)
            (self.out / "history.json").write_text(json.dumps(self.history, indent=1))
            logger.info("final checkpoint: %s", final)
        barrier(self.ctx)
        return final


def micro_batching(batch_size: int, micro_batch_size: int | None, world_size: int) -> tuple[int, int]:
    """(micro batch per process, accumulation steps) for a global `batch_size`."""
    micro = micro_batch_size or max(batch_size // world_size, 1)
    if batch_size % (micro * world_size):
        raise ValueError(
            f"trainer.batch_size={batch_size} is not a multiple of micro_batch_size ({micro}) x processes ({world_size}); "
            f"pick a batch size divisible by {micro * world_size} or another trainer.micro_batch_size"
        )
    return micro, batch_size // (micro * world_size)


def unwrap_hf(model: torch.nn.Module) -> torch.nn.Module:
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _replace_dir(src: Path, dst: Path) -> None:
    import os
    import shutil

    if dst.exists():
        old = dst.with_name(f".old-{dst.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dst, old)
        os.rename(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(src, dst)


def _yaml(d: dict) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(d))


def _fmt(m: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in sorted(m.items()))
