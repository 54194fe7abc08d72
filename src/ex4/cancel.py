"""A process-wide stop signal for long loops running on other threads.

Python cannot stop a thread from outside, so a local sweep that runs runs on threads (`ex4.executor`) sets
`CANCELLED` when it stops (Ctrl-C, or one of its tasks failed) and the training and inference loops check it
between steps (`check_cancelled`, called by `ex4.train.features.progress`): a stopped run raises `Cancelled`
within one step, and since nothing is stored before a run returns, nothing half-computed reaches the store.
"""

from __future__ import annotations

import threading

CANCELLED = threading.Event()


class Cancelled(Exception):
    """Raised inside a run whose sweep was stopped."""


def check_cancelled() -> None:
    if CANCELLED.is_set():
        raise Cancelled("the sweep was stopped")
