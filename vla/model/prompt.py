"""OpenVLA's prompt format (`PurePromptBuilder` for Llama-2 "pure" backbones)."""

from __future__ import annotations

PROMPT_TEMPLATE = "In: What action should the robot take to {instruction}?\nOut:"


def build_prompt(instruction: str) -> str:
    """The inference prompt; it ends at "Out:" and the suffix token (29871 for Llama-2) is appended as an id."""
    if not isinstance(instruction, str):
        raise TypeError(f"instruction must be str, got {type(instruction).__name__}")
    return PROMPT_TEMPLATE.format(instruction=instruction.lower())
