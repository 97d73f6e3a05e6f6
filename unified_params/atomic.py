"""Write phases that an interrupt cannot cut in half: a Ctrl-C is held until the writes are done, then raised."""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def hold_interrupts() -> Iterator[None]:
    """Run the block with SIGINT held; one that arrived meanwhile is delivered (KeyboardInterrupt by default) after it.

    Every write path (init, set, load, transfer, materialize) writes inside this block, after all checks.
    Only the main thread receives signals, so elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
        if received:
            signal.raise_signal(signal.SIGINT)
