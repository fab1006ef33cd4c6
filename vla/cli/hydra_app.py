"""Hydra's error plus our hint, for every command.

Hydra prints its own message when it rejects a command line (an unknown key, a missing value, a bad group
option) and exits before the command's body runs; a user then still has to guess the right spelling. Each
command wraps its body with `ConfigHint.task` and runs through `ConfigHint.run`, which adds the command's
hint after hydra's error, and only for errors raised before the body started (the body reports its own).

    hint = ConfigHint("Hint: vla-merge takes adapter=<dir> output=<dir> [base=<dir>].")

    @hydra.main(version_base=None, config_path="pkg://configs", config_name="merge")
    @hint.task
    def _app(cfg): ...

    def main():
        hint.run(_app)
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable


class ConfigHint:
    """`hint`: the text to print, or a function that prints it (e.g. one listing the valid keys)."""

    def __init__(self, hint: str | Callable[[], None]) -> None:
        self.hint = hint
        self.started = False

    def task(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        @functools.wraps(fn)
        def body(cfg: Any) -> Any:
            self.started = True
            return fn(cfg)

        return body

    def run(self, app: Callable[[], Any]) -> Any:
        try:
            return app()
        except SystemExit as e:
            if e.code not in (0, None) and not self.started:
                if callable(self.hint):
                    self.hint()
                else:
                    sys.stderr.write(self.hint + "\n")
            raise
