"""One process or several (torchrun): process group, model wrapping (DDP / FSDP2), full state dicts.

`torchrun --nproc_per_node N vla-train ...` sets RANK/WORLD_SIZE/LOCAL_RANK; without them the trainer runs
in one process and nothing here touches torch.distributed. Backend: NCCL on GPUs, gloo on the CPU.
FSDP uses FSDP2 (`torch.distributed.fsdp.fully_shard`): each decoder / encoder layer (the model's
`_no_split_modules`) is sharded on its own, then the root.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(pref: str) -> torch.device:
    if pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("trainer.device=cuda but no CUDA device is visible; use trainer.device=cpu or auto")
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def init_distributed(device_pref: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun; a plain one-process context otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_pref)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    ctx = DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        ctx.initialized_here = True
    return ctx


def shutdown(ctx: DistContext) -> None:
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """True when `flag` is true on any process (all processes must call it)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(ctx: DistContext, values: dict[str, float]) -> dict[str, float]:
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def choose_parallelism(requested: str, num_params: int, fsdp_min_params: int) -> str:
    if requested != "auto":
        return requested
    return "fsdp" if num_params >= fsdp_min_params else "ddp"


def wrap_model(model: nn.Module, ctx: DistContext, parallelism: str) -> nn.Module:
    """DDP or FSDP2 across processes; the model itself with one process."""
    if not ctx.distributed:
        return model
    if parallelism == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        return DDP(model, device_ids=ids)
    if parallelism == "fsdp":
        from torch.distributed.fsdp import fully_shard

        names = set(getattr(_unwrap_peft(model), "_no_split_modules", None) or [])
        layers = [m for m in model.modules() if type(m).__name__ in names]
        for layer in layers:
            fully_shard(layer)
        fully_shard(model)
        logger.info("FSDP2: sharded %d layers (%s) and the root", len(layers), ", ".join(sorted(names)) or "none")
        return model
    raise ValueError(f"unknown parallelism {parallelism!r}; choose ddp or fsdp")


def _unwrap_peft(model: nn.Module) -> nn.Module:
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def unwrap(model: nn.Module) -> nn.Module:
    """The module under DDP (FSDP2 shards in place, so its module is the model)."""
    return model.module if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel) else model


@contextlib.contextmanager
def no_gradient_sync(model: nn.Module, parallelism: str, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on accumulation micro-steps (all but the last)."""
    if not enabled:
        yield
        return
    if isinstance(model, nn.parallel.DistributedDataParallel):
        with model.no_sync():
            yield
        return
    if parallelism == "fsdp" and hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
        return
    yield


def full_state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer, ctx: DistContext) -> tuple[dict, dict]:
    """Unsharded model and optimizer state dicts on the CPU, keyed by parameter name (all ranks call)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=ctx.distributed)
    msd, osd = get_state_dict(model, optimizer, options=opts)
    if not ctx.distributed:
        msd = {k: v.detach().cpu().clone() for k, v in msd.items()}
    return msd, osd


def load_full_state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer, msd: dict | None, osd: dict) -> None:
    """Load unsharded state (saved by `full_state_dicts`) into a possibly wrapped model and its optimizer."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict, set_model_state_dict

    opts = StateDictOptions(full_state_dict=True)
    if msd is not None:
        set_model_state_dict(model, msd, options=opts)
    set_optimizer_state_dict(model, optimizer, osd, options=opts)
