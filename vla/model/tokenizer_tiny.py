"""A small byte-level BPE tokenizer for tiny models, built locally (no hub), with OpenVLA's id layout.

Layout for `vocab_size=V`: `<unk>`=0, `<s>`=1, `</s>`=2 (Llama's ids), then the 256 byte symbols and BPE merges
learned from a built-in corpus of robot instructions, up to id V-257; the 256 action bins are the last 256
ids of the base vocabulary (V-256 .. V-1, as OpenVLA overwrites Llama's last 256 ids); `<pad>` = V (OpenVLA:
32000). BOS is prepended automatically. The space symbol "Ġ" plays the role of Llama-2's 29871 prompt suffix.
"""

from __future__ import annotations

import itertools

SPECIALS = ["<unk>", "<s>", "</s>"]
PAD = "<pad>"
SPACE = "Ġ"  # the byte-level symbol of " "

_VERBS = ["pick up", "put", "place", "move", "push", "open", "close", "lift", "stack", "slide", "turn", "grasp",
          "wipe", "pour", "insert", "flip", "rotate", "drop", "reach", "press"]
_COLORS = ["red", "green", "blue", "yellow", "white", "black", "orange", "purple", "pink", "brown"]
_OBJECTS = ["cube", "block", "cup", "bowl", "drawer", "door", "can", "bottle", "spoon", "towel", "pot", "lid",
            "plate", "sponge", "marker", "carrot", "banana", "eggplant", "button", "knob", "object", "item"]
_PLACES = ["on the table", "in the drawer", "into the bowl", "on the plate", "to the left", "to the right",
           "next to the cup", "in the sink", "on top of the block", "onto the towel", "in the basket"]


def instruction_corpus() -> list[str]:
    """Deterministic training text: OpenVLA prompts over simple instruction combinations."""
    lines = []
    for verb, color, obj in itertools.product(_VERBS, _COLORS, _OBJECTS):
        lines.append(f"{verb} the {color} {obj}")
    for (verb, obj), place in itertools.product(itertools.product(_VERBS[:6], _OBJECTS), _PLACES):
        lines.append(f"{verb} the {obj} {place}")
    return [f"In: What action should the robot take to {line}?\nOut: " for line in lines]


def build_tiny_tokenizer(vocab_size: int = 1024, n_action_bins: int = 256):
    """A `PreTrainedTokenizerFast` with `vocab_size` base ids (action bins last) plus `<pad>` at `vocab_size`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    n_text = vocab_size - n_action_bins
    if n_text < len(SPECIALS) + 256 + 1:
        raise ValueError(f"vocab_size={vocab_size} leaves {n_text} text ids; need > {len(SPECIALS) + 256} "
                         f"(3 specials + 256 bytes) besides the {n_action_bins} action bins")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=n_text, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(instruction_corpus(), trainer=trainer)
    have = tok.get_vocab_size()
    # the corpus may not fill every merge slot; filler symbols keep the action bins at the vocab's end
    if have < n_text:
        tok.add_tokens([f"<unused_{i}>" for i in range(n_text - have)])
    tok.add_special_tokens([f"<action_{i}>" for i in range(n_action_bins)] + [PAD])
    if tok.token_to_id(PAD) != vocab_size or tok.token_to_id("<action_0>") != n_text:
        raise RuntimeError("tiny tokenizer id layout is off: action bins must end at vocab_size, <pad> at vocab_size")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token=PAD)


def space_token_id(tokenizer) -> int:
    """Id of the lone space symbol: the prompt suffix of byte-level tokenizers (Llama-2: 29871)."""
    return int(tokenizer.convert_tokens_to_ids(SPACE))
