"""Convert a released OpenVLA checkpoint directory (timm towers, `OpenVLAForActionPrediction` layout) into ours.

Key mapping (source -> ours, both towers under `vision_backbone.`):
- DINOv2-reg `featurizer.*` -> `dino.*`: fused `attn.qkv` split into q/k/v, `attn.proj` -> `o_proj`,
  LayerScale `ls{1,2}.scale_factor` -> `layer_scale{1,2}.lambda1`, `reg_token` -> `register_tokens`.
  timm adds no position to the prefix tokens (`no_embed_class`), while transformers adds its table's slot 0
  to CLS; that slot is therefore zero, so CLS (and the registers, which transformers never positions) come
  out identical. `mask_token` (absent in timm, used only for masked pre-training) is zero.
- SigLIP `fused_featurizer.*` -> `siglip.*`: qkv split, `attn.proj` -> `out_proj`, `norm{1,2}` ->
  `layer_norm{1,2}`, `pos_embed` (1, N, D) -> `position_embedding.weight` (N, D), final `norm` ->
  `post_layernorm`, the unused MAP head `attn_pool.*` -> `head.*` (q and kv fused into `in_proj`).
- `projector.*` and `language_model.*` unchanged.
The tower sizes are read from the weight shapes (the reference derives them from timm ids). Head counts cannot
be: no tensor's shape depends on them (the fused qkv is (3 * width, width) for any count), and a wrong count
that divides the width imports, loads and runs, yet computes other features (off by up to 4.0 on the golden
fixture). Standard widths therefore use the count of timm's model of that width, the model OpenVLA builds
its towers from; any other width needs `num_heads`, which the import reports as given, not verified.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Mapping

import torch

logger = logging.getLogger(__name__)

DINO = "vision_backbone.featurizer."
SIGLIP = "vision_backbone.fused_featurizer."
# timm widths -> head counts (ViT-S/B/L/g DINOv2, SigLIP B/L/So400m), head_dim 64 (72 for So400m).
STANDARD_HEADS = {384: 6, 768: 12, 1024: 16, 1152: 16, 1536: 24}
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json")


class CheckpointMismatchError(ValueError):
    """The checkpoint's tensors do not fit the target architecture; the message names them."""


def _blocks(shapes: Mapping[str, tuple], prefix: str) -> int:
    idx = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(prefix) + r"blocks\.(\d+)\.", k))}
    if not idx:
        raise CheckpointMismatchError(f"no '{prefix}blocks.N.*' tensors: is this an OpenVLA (dinosiglip) checkpoint?")
    return max(idx) + 1


def infer_tower_sizes(shapes: Mapping[str, tuple], num_heads: tuple[int | None, int | None] = (None, None)) -> dict:
    """Tower sizes from tensor shapes: {"dino": {...}, "siglip": {...}} with hidden, depth, mlp, heads, patch.

    Head counts come from `num_heads` (dino, siglip) where given (checked only to divide the width), else
    from the width when it is a standard timm one; any other width without a count raises."""
    out = {}
    for name, prefix, heads in (("dino", DINO, num_heads[0]), ("siglip", SIGLIP, num_heads[1])):
        try:
            hidden = shapes[prefix + "patch_embed.proj.weight"][0]
            patch = shapes[prefix + "patch_embed.proj.weight"][-1]
            mlp = shapes[prefix + "blocks.0.mlp.fc1.weight"][0]
            n_pos = shapes[prefix + "pos_embed"][1]
        except KeyError as e:
            raise CheckpointMismatchError(f"checkpoint lacks {e.args[0]!r}, needed to size the {name} tower") from None
        if heads is None:
            if hidden not in STANDARD_HEADS:
                raise CheckpointMismatchError(
                    f"{name} tower width {hidden} is not a standard timm width {sorted(STANDARD_HEADS)}, so its head "
                    f"count must be given: pass {name}_num_heads=N (function: num_heads=(dino, siglip)), the "
                    f"num_heads the tower was built with (its timm create_model arguments or training config). It "
                    f"cannot be read from the weights: no tensor's shape depends on it, and a wrong count that "
                    f"divides the width would import and run while computing different features")
            heads = STANDARD_HEADS[hidden]
        elif heads < 1 or hidden % heads:
            divisors = [d for d in range(1, hidden + 1) if hidden % d == 0]
            raise CheckpointMismatchError(
                f"{name}_num_heads={heads} does not divide the {name} tower width {hidden}; a head count is one of "
                f"{divisors}: pass the num_heads the tower was built with")
        elif hidden in STANDARD_HEADS and heads != STANDARD_HEADS[hidden]:
            logger.warning("%s_num_heads=%d differs from the %d heads of timm's standard tower of width %d, which "
                           "OpenVLA builds its towers from; keep it only if this tower was built differently",
                           name, heads, STANDARD_HEADS[hidden], hidden)
        out[name] = {"hidden": hidden, "depth": _blocks(shapes, prefix), "mlp": mlp, "heads": heads, "patch": patch,
                     "num_positions": n_pos}
    out["dino"]["registers"] = shapes.get(DINO + "reg_token", (1, 0, 0))[1]
    return out


def build_config(openvla_config: dict, shapes: Mapping[str, tuple], num_heads=(None, None)):
    """Our `VLAConfig` for a released OpenVLA `config.json` plus the checkpoint's tensor shapes."""
    from transformers import Dinov2WithRegistersConfig, LlamaConfig, SiglipVisionConfig

    from vla.model.configuration_vla import VLAConfig

    vb = openvla_config.get("vision_backbone_id", "")
    if not vb.startswith("dinosiglip"):
        raise CheckpointMismatchError(f"vision_backbone_id={vb!r}: only fused DINOv2+SigLIP ('dinosiglip-*') "
                                      "checkpoints are supported")
    if openvla_config.get("image_resize_strategy", "resize-naive") != "resize-naive":
        raise CheckpointMismatchError(f"image_resize_strategy={openvla_config['image_resize_strategy']!r}: only "
                                      "'resize-naive' is supported")
    arch = openvla_config.get("arch_specifier", "no-align+fused-gelu-mlp")
    if arch != "no-align+fused-gelu-mlp":
        raise CheckpointMismatchError(f"arch_specifier={arch!r}: only 'no-align+fused-gelu-mlp' is supported")
    sizes = infer_tower_sizes(shapes, num_heads)
    image_size = int(openvla_config.get("image_sizes", [224])[0])
    d, s = sizes["dino"], sizes["siglip"]
    grid = image_size // d["patch"]
    if grid * grid != d["num_positions"] or grid * grid != s["num_positions"]:
        raise CheckpointMismatchError(f"pos_embed tables ({d['num_positions']}, {s['num_positions']} positions) do "
                                      f"not fit image size {image_size} with patch {d['patch']}")
    if d["mlp"] % d["hidden"]:
        raise CheckpointMismatchError(f"DINOv2 MLP width {d['mlp']} is not a multiple of its width {d['hidden']}")
    dino = Dinov2WithRegistersConfig(
        hidden_size=d["hidden"], num_hidden_layers=d["depth"], num_attention_heads=d["heads"],
        mlp_ratio=d["mlp"] // d["hidden"], patch_size=d["patch"], image_size=image_size,
        num_register_tokens=d["registers"], layer_norm_eps=1e-6, hidden_act="gelu", qkv_bias=True)
    siglip = SiglipVisionConfig(
        hidden_size=s["hidden"], num_hidden_layers=s["depth"], num_attention_heads=s["heads"],
        intermediate_size=s["mlp"], patch_size=s["patch"], image_size=image_size, layer_norm_eps=1e-6,
        hidden_act="gelu", vision_use_head=(SIGLIP + "attn_pool.latent") in shapes)
    text = {k: v for k, v in openvla_config["text_config"].items() if k not in ("model_type", "architectures")}
    text = LlamaConfig(**text)
    llama2 = openvla_config.get("llm_backbone_id", "llama2").startswith("llama2")
    pad = int(openvla_config.get("pad_token_id", 32000))
    return VLAConfig(
        dino_config=dino, siglip_config=siglip, text_config=text, image_size=image_size,
        n_action_bins=int(openvla_config.get("n_action_bins", 256)), action_token_end_id=pad,
        prompt_suffix_token_id=29871 if llama2 else None, pad_token_id=pad,
        pad_to_multiple_of=int(openvla_config.get("pad_to_multiple_of", 64)),
        llm_max_length=int(openvla_config.get("llm_max_length", 2048)),
        norm_stats=openvla_config.get("norm_stats") or {},
    )


def _split_qkv(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(w.chunk(3, dim=0))  # timm packs [q; k; v] on the output axis


def convert_state_dict(src: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released OpenVLA tensors -> our tensor names (works on meta tensors too). Unknown keys raise."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, t in src.items():
        if key.startswith(("projector.", "language_model.")):
            out[key] = t
        elif key.startswith(DINO):
            _convert_dino(key[len(DINO):], t, out, unknown)
        elif key.startswith(SIGLIP):
            _convert_siglip(key[len(SIGLIP):], t, out, src, unknown)
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointMismatchError(f"{len(unknown)} checkpoint tensor(s) have no place in the model: {unknown[:20]}")
    return out


def _convert_dino(k: str, t: torch.Tensor, out: dict, unknown: list) -> None:
    p = "vision_backbone.dino."
    if k == "cls_token":
        out[p + "embeddings.cls_token"] = t
        out[p + "embeddings.mask_token"] = torch.zeros(1, t.shape[-1], dtype=t.dtype, device=t.device)
    elif k == "reg_token":
        out[p + "embeddings.register_tokens"] = t
    elif k == "pos_embed":  # (1, N, D) patches only -> (1, 1 + N, D) with a zero CLS slot
        cls_slot = torch.zeros(1, 1, t.shape[-1], dtype=t.dtype, device=t.device)
        out[p + "embeddings.position_embeddings"] = torch.cat([cls_slot, t], dim=1)
    elif k.startswith("patch_embed.proj."):
        out[p + "embeddings.patch_embeddings.projection." + k.split(".")[-1]] = t
    elif k.startswith("norm."):
        out[p + "layernorm." + k.split(".")[-1]] = t
    elif m := re.match(r"blocks\.(\d+)\.(.+)", k):
        i, rest = m.groups()
        b = f"{p}encoder.layer.{i}."
        if rest.startswith("attn.qkv."):
            kind = rest.split(".")[-1]
            for name, part in zip(("q_proj", "k_proj", "v_proj"), _split_qkv(t)):
                out[f"{b}attention.{name}.{kind}"] = part
        elif rest.startswith("attn.proj."):
            out[f"{b}attention.o_proj.{rest.split('.')[-1]}"] = t
        elif rest in ("ls1.scale_factor", "ls1.gamma"):
            out[b + "layer_scale1.lambda1"] = t
        elif rest in ("ls2.scale_factor", "ls2.gamma"):
            out[b + "layer_scale2.lambda1"] = t
        elif rest.split(".")[0] in ("norm1", "norm2") or rest.startswith(("mlp.fc1.", "mlp.fc2.")):
            out[b + rest] = t
        else:
            unknown.append(DINO + k)
    else:
        unknown.append(DINO + k)


def _convert_siglip(k: str, t: torch.Tensor, out: dict, src: Mapping, unknown: list) -> None:
    p = "vision_backbone.siglip."
    if k == "pos_embed":
        out[p + "embeddings.position_embedding.weight"] = t[0]
    elif k.startswith("patch_embed.proj."):
        out[p + "embeddings.patch_embedding." + k.split(".")[-1]] = t
    elif k.startswith("norm."):
        out[p + "post_layernorm." + k.split(".")[-1]] = t
    elif k.startswith("attn_pool."):
        rest = k[len("attn_pool."):]
        h = p + "head."
        if rest == "latent":
            out[h + "probe"] = t
        elif rest.startswith("q."):  # q and kv fuse into nn.MultiheadAttention's in_proj
            kind = rest.split(".")[-1]
            suffix = "in_proj_weight" if kind == "weight" else "in_proj_bias"
            out[h + "attention." + suffix] = torch.cat([t, src[SIGLIP + "attn_pool.kv." + kind]], dim=0)
        elif rest.startswith("kv."):
            pass  # consumed with q
        elif rest.startswith("proj."):
            out[h + "attention.out_proj." + rest.split(".")[-1]] = t
        elif rest.startswith("norm."):
            out[h + "layernorm." + rest.split(".")[-1]] = t
        elif rest.startswith(("mlp.fc1.", "mlp.fc2.")):
            out[h + rest] = t
        else:
            unknown.append(SIGLIP + k)
    elif m := re.match(r"blocks\.(\d+)\.(.+)", k):
        i, rest = m.groups()
        b = f"{p}encoder.layers.{i}."
        if rest.startswith("attn.qkv."):
            kind = rest.split(".")[-1]
            for name, part in zip(("q_proj", "k_proj", "v_proj"), _split_qkv(t)):
                out[f"{b}self_attn.{name}.{kind}"] = part
        elif rest.startswith("attn.proj."):
            out[f"{b}self_attn.out_proj.{rest.split('.')[-1]}"] = t
        elif rest.startswith("norm1."):
            out[b + "layer_norm1." + rest.split(".")[-1]] = t
        elif rest.startswith("norm2."):
            out[b + "layer_norm2." + rest.split(".")[-1]] = t
        elif rest.startswith(("mlp.fc1.", "mlp.fc2.")):
            out[b + rest] = t
        else:
            unknown.append(SIGLIP + k)
    else:
        unknown.append(SIGLIP + k)


def check_against_model(converted: Mapping[str, torch.Tensor], model: torch.nn.Module) -> None:
    """Every model tensor present with the right shape, nothing extra; otherwise name the offenders."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(converted))
    extra = sorted(set(converted) - set(expected))
    mismatched = [f"{k}: checkpoint {tuple(converted[k].shape)} vs model {expected[k]}"
                  for k in sorted(set(expected) & set(converted)) if tuple(converted[k].shape) != expected[k]]
    if missing or extra or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {missing[:20]}")
        if extra:
            parts.append(f"unexpected {len(extra)}: {extra[:20]}")
        if mismatched:
            parts.append(f"shape mismatch {len(mismatched)}: {mismatched[:20]}")
        raise CheckpointMismatchError("checkpoint does not fit the model; " + "; ".join(parts))


def _own_storage(t: torch.Tensor) -> torch.Tensor:
    """Views (qkv chunks, SigLIP's pos_embed[0]) get their own storage so safetensors can write them; other
    tensors are passed through, keeping the peak memory of a 7B import near one copy of the weights."""
    t = t.contiguous()
    if t.untyped_storage().nbytes() != t.numel() * t.element_size():
        t = t.clone()
    return t


def read_openvla_dir(openvla_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """config.json and all tensors (single file or sharded index) of a released checkpoint directory."""
    from safetensors.torch import load_file

    openvla_dir = Path(openvla_dir)
    cfg_path = openvla_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: point at an OpenVLA checkpoint directory "
                                "(config.json + model*.safetensors)")
    config = json.loads(cfg_path.read_text())
    index = openvla_dir / "model.safetensors.index.json"
    weight_map: dict[str, str] = {}
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map") or {}
        if not weight_map:
            raise CheckpointMismatchError(f"{index} has no weight_map: is the index file complete?")
        files = sorted(set(weight_map.values()))
        absent = [f for f in files if not (openvla_dir / f).is_file()]
        if absent:
            raise FileNotFoundError(f"{index.name} lists {len(absent)} shard(s) not in {openvla_dir}: {absent[:10]}; "
                                    "the download is incomplete: fetch the missing files")
    else:
        files = [p.name for p in sorted(openvla_dir.glob("*.safetensors")) if p.name.startswith("model")]
    if not files:
        raise FileNotFoundError(f"no model*.safetensors in {openvla_dir}")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        tensors.update(load_file(str(openvla_dir / f)))
    unread = sorted(set(weight_map) - set(tensors))
    if unread:
        raise CheckpointMismatchError(f"{len(unread)} tensor(s) listed in {index.name} are in none of its shards: "
                                      f"{unread[:20]}")
    return config, tensors


def image_processor_kwargs(openvla_dir: Path) -> dict:
    """Normalization constants from a released preprocessor_config.json (the bf16-rounded DINOv2 values)."""
    path = Path(openvla_dir) / "preprocessor_config.json"
    if not path.is_file():
        return {}
    pp = json.loads(path.read_text())
    params = pp.get("tvf_normalize_params")
    if not params:
        return {}
    return {"means": [list(p["mean"]) for p in params], "stds": [list(p["std"]) for p in params]}


def given_head_counts(num_heads: tuple[int | None, int | None]) -> list[str]:
    """The `<tower>_num_heads=N` a user gave: what no import can verify (see the module docstring)."""
    return [f"{name}_num_heads={n}" for name, n in zip(("dino", "siglip"), num_heads) if n is not None]


def import_openvla(openvla_dir: str | Path, out_dir: str | Path, num_heads=(None, None),
                   dtype: torch.dtype | None = None, max_shard_size: str = "5GB", overwrite: bool = False) -> Path:
    """Convert `openvla_dir` into a checkpoint directory of ours (weights, config, processor, tokenizer files).

    Tensors are renamed and checked against the architecture (on the meta device, no allocation) before
    anything is written; a mismatch raises `CheckpointMismatchError` naming the tensors.
    """
    from huggingface_hub import save_torch_state_dict

    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.processing_vla import VLAProcessor

    openvla_dir, out_dir = Path(openvla_dir), Path(out_dir)
    old = sorted(out_dir.glob("model*.safetensors*")) if out_dir.is_dir() else []
    if old and not overwrite:
        raise FileExistsError(f"{out_dir} already holds weights ({old[0].name}); choose another out_dir or pass "
                              "overwrite=true")
    openvla_config, tensors = read_openvla_dir(openvla_dir)
    config = build_config(openvla_config, {k: tuple(v.shape) for k, v in tensors.items()}, num_heads)
    converted = convert_state_dict(tensors)
    with torch.device("meta"):
        skeleton = VLAForActionPrediction(config)
    check_against_model(converted, skeleton)
    # store the names `save_pretrained` writes (transformers renames a few DINOv2 weights on disk), so an
    # imported directory is laid out exactly like one this project saves
    from transformers.core_model_loading import revert_weight_conversion

    converted = dict(revert_weight_conversion(skeleton, converted))
    converted = {k: _own_storage(v.to(dtype) if dtype is not None else v) for k, v in converted.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in old:  # stale shards of an earlier import would mix with the new ones
        f.unlink()
    config.architectures = ["VLAForActionPrediction"]
    config.dtype = next(iter(converted.values())).dtype
    config.save_pretrained(out_dir)
    save_torch_state_dict(converted, out_dir, max_shard_size=max_shard_size)
    copied = [f for f in TOKENIZER_FILES if (openvla_dir / f).is_file()]
    for f in copied:
        shutil.copy2(openvla_dir / f, out_dir / f)
    VLAProcessor.from_model_config(config, **image_processor_kwargs(openvla_dir)).save_pretrained(out_dir)
    logger.info("imported %s -> %s (%d tensors; tokenizer files: %s)", openvla_dir, out_dir, len(converted),
                copied or "none")
    given = given_head_counts(num_heads)
    if given:
        logger.warning(
            "head counts %s were given, not read from the weights, and this import cannot verify them: no tensor's "
            "shape depends on a head count, so a wrong one that divides the tower width imports and runs but "
            "computes different features. Compare the imported model's outputs with the source model's (e.g. the "
            "patch features of one image) before relying on it", ", ".join(given))
    else:
        logger.info("head counts dino %d, siglip %d: those of timm's standard towers of widths %d and %d",
                    config.dino_config.num_attention_heads, config.siglip_config.num_attention_heads,
                    config.dino_config.hidden_size, config.siglip_config.hidden_size)
    return out_dir
