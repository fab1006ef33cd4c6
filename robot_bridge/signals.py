"""Stop a long-running role on SIGINT or SIGTERM, whatever signal dispositions the process inherited.

Python turns SIGINT into KeyboardInterrupt only when the process started with SIGINT at its default. A process
started in the background by a non-interactive shell (`vla-bridge ... &` in a script, `nohup`, or a test
suite started that way and every child of it) inherits SIGINT *ignored*: Ctrl-C, `kill -INT` and a launch
system's SIGINT then do nothing, and the node keeps commanding the arm. SIGTERM, what a launch system or
systemd sends next, ends the process without the zero-velocity command. So the roles that drive or serve
install explicit handlers for both: the first signal asks for an orderly stop (sets `stop`, or raises
KeyboardInterrupt where there is no event to set), a second one raises KeyboardInterrupt, whatever is still
in the way.

    stop = threading.Event()
    with stop_on_signals(stop):
        node.run(stop)        # returns after SIGINT/SIGTERM; the node's last command is a stop
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

logger = logging.getLogger(__name__)

#: the signals a user (Ctrl-C), `ros2 launch` (SIGINT, then SIGTERM) and systemd (SIGTERM) stop a process with
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(stop: threading.Event | None = None) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM set `stop` (the first) or raise KeyboardInterrupt (a second one,
    or the first when `stop` is None). Handlers can only be set in the main thread: elsewhere this does
    nothing. The previous handlers come back after the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if stop is None or stop.is_set():
            raise KeyboardInterrupt(name)
        logger.info("%s: stopping (a second one interrupts)", name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
