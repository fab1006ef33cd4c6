"""Hydra's error plus our hints, for every command.

Hydra prints its own message when it rejects a command line (an unknown key, a missing value, a bad group
option) and exits before the command's body runs; a user then still has to guess the right spelling. Each
command wraps its body with `ConfigHint.task` and runs through `ConfigHint.run`, which adds, after hydra's
error and only for errors raised before the body started (the body reports its own): the closest valid key
for each unknown one (`vla.cli.hints`), then the command's usage line.

    hint = ConfigHint("vla-merge", "merge", "Hint: vla-merge takes adapter=<dir> output=<dir> [base=<dir>].")

    @hydra.main(version_base=None, config_path="pkg://configs", config_name="merge")
    @hint.task
    def _app(cfg): ...

    def main():
        hint.run(_app)
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable

from vla.cli.hints import closest_key_hint


class ConfigHint:
    """The hints of one command: `command` (its name), `config_name` (its primary config), `usage` (text, or a
    function of the command line returning text)."""

    def __init__(self, command: str, config_name: str, usage: str | Callable[[list[str]], str] = "") -> None:
        self.command, self.config_name, self.usage = command, config_name, usage
        self.started = False

    def task(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        @functools.wraps(fn)
        def body(cfg: Any) -> Any:
            self.started = True
            return fn(cfg)

        return body

    def text(self, argv: list[str]) -> str:
        """What is printed after hydra's error for this command line."""
        usage = self.usage(argv) if callable(self.usage) else self.usage
        lines = [closest_key_hint(self.command, self.config_name, argv), usage]
        return "\n".join(line for line in lines if line)

    def run(self, app: Callable[[], Any]) -> Any:
        try:
            return app()
        except SystemExit as e:
            if e.code not in (0, None) and not self.started:
                text = self.text(sys.argv[1:])
                if text:
                    sys.stderr.write(text + "\n")
            raise


def default_headless_gl() -> None:
    """Render MuJoCo offscreen with EGL when no display is configured (it would try GLFW/X11 and fail).

    Called by the entry points that render (`vla-collect`, `vla-eval`, `vla-demo`, `wm-*`, `vla-bridge`),
    never at import of a library package: a user's own process keeps its own `MUJOCO_GL`.
    """
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
