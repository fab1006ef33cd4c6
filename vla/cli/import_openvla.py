"""`vla-import <openvla_dir> <out_dir>`: convert a released OpenVLA checkpoint into a directory of ours.

    vla-import /ckpt/openvla-7b checkpoints/openvla-7b
    vla-import openvla_dir=/ckpt/tiny out_dir=/tmp/tiny dino_num_heads=2 siglip_num_heads=2 dtype=bfloat16

The output loads with `VLAPolicy.from_pretrained(out_dir, unnorm_key=...)` and `VLAForActionPrediction.
from_pretrained(out_dir)`: safetensors weights, config.json (with the checkpoint's norm_stats), the processor
and the tokenizer files when the source has them. The source may be one file or an index with shards.

Tower head counts are taken from standard timm widths (OpenVLA's towers); other widths (e.g. tiny towers)
need `dino_num_heads` / `siglip_num_heads`, because no weight shape reveals a head count and a wrong count
that divides the width would import and run with different features. The last lines say what the import
checked (every tensor placed with its shape, the result reloads and its vision path runs) and what it did not:
its outputs are not compared with the source model's, and given head counts are reported as unverified.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Optional

import hydra
from omegaconf import MISSING, DictConfig

from vla.cli.hydra_app import ConfigHint

logger = logging.getLogger("vla.cli.import_openvla")

HINT = ("Hint: vla-import <openvla_dir> <out_dir> [dino_num_heads=N siglip_num_heads=N dtype=float32|bfloat16|"
        "float16 max_shard_size=5GB verify=true overwrite=false]")
_hint = ConfigHint("vla-import", "import", HINT)


@dataclass
class ImportConfig:
    openvla_dir: str = MISSING
    out_dir: str = MISSING
    dino_num_heads: Optional[int] = None  # None: from the tower width (standard timm models)
    siglip_num_heads: Optional[int] = None
    dtype: Optional[str] = None  # None: keep the checkpoint's dtype
    max_shard_size: str = "5GB"
    verify: bool = True  # load the written directory back and run the vision path once (not a comparison)
    overwrite: bool = False  # replace the weights of an earlier import in out_dir


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="import_schema", node=ImportConfig)


@hydra.main(version_base=None, config_path="pkg://configs", config_name="import")
@_hint.task
def _app(cfg: DictConfig) -> None:
    from vla.model.convert_openvla import CheckpointMismatchError, import_openvla
    from vla.model.policy import resolve_dtype

    num_heads = (cfg.dino_num_heads, cfg.siglip_num_heads)
    try:
        dtype = resolve_dtype(cfg.dtype, "cpu") if cfg.dtype else None
        out = import_openvla(cfg.openvla_dir, cfg.out_dir, num_heads=num_heads, dtype=dtype,
                             max_shard_size=cfg.max_shard_size, overwrite=cfg.overwrite)
        if cfg.verify:
            check_import(out, num_heads)
    except (CheckpointMismatchError, FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        logger.error("%s: %s", type(e).__name__, e)
        sys.exit(1)
    logger.info("wrote %s", out)


def check_import(out, num_heads: tuple[Optional[int], Optional[int]] = (None, None)) -> list[str]:
    """Load the written checkpoint back (missing/mismatched tensors raise) and run the vision path once, then
    log what that established and what it did not. Returns the lines logged "not verified"."""
    import torch

    from vla.model.convert_openvla import given_head_counts
    from vla.model.policy import load_checkpoint

    model, _ = load_checkpoint(out)
    s = model.config.image_size
    with torch.no_grad():
        feats = model.project_images(torch.zeros(1, 6 * model.config.num_images, s, s, dtype=torch.float32))
    finite = bool(torch.isfinite(feats).all())
    if not finite:
        raise ValueError(f"the imported model's vision path gives non-finite features on a blank image ({out})")
    logger.info("checked: every source tensor placed with its shape; the written checkpoint reloads (%d parameters) "
                "and its vision path runs (patch tokens %s, finite); unnorm_keys %s", model.num_parameters(),
                tuple(feats.shape), model.config.unnorm_keys)
    outputs = ("outputs: not compared with the source model's here (vla-import runs no reference model; the "
               "conversion itself is tested against the reference on a golden fixture)")
    logger.info("not verified: %s", outputs)
    unverified = [outputs]
    given = given_head_counts(num_heads)
    if given:
        heads = (f"head counts {', '.join(given)}: given, and no weight shape can confirm them; a wrong count "
                 "that divides the width gives different features. Compare with the source model's outputs")
        logger.warning("not verified: %s", heads)
        unverified.append(heads)
    return unverified


def _positional_to_overrides(argv: list[str]) -> list[str]:
    """`vla-import A B ...` -> `openvla_dir=A out_dir=B ...` (hydra itself only takes key=value)."""
    names = ["openvla_dir", "out_dir"]
    out = []
    for arg in argv:
        if names and "=" not in arg and not arg.startswith("-"):
            out.append(f"{names.pop(0)}={arg}")
        else:
            out.append(arg)
    return out


def main() -> None:
    register_configs()
    sys.argv = [sys.argv[0]] + _positional_to_overrides(sys.argv[1:])
    _hint.run(_app)


if __name__ == "__main__":
    main()
