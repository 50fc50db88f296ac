"""``--trial-timeout``: stop a trial that runs longer than its allowance.

:func:`deadline` raises :class:`TrialTimeout` inside the code it guards once ``seconds`` have
passed. In the main thread it uses a POSIX interval timer (``SIGALRM``), which interrupts
Python code at the next bytecode; elsewhere (a Ray Tune function trainable runs in a thread) a
timer thread raises the exception asynchronously in the guarded thread
(``PyThreadState_SetAsyncExc``), which also lands at the next bytecode the thread executes. A
single long C call (one huge convolution) finishes first; training loops return to Python
after every step, so the overshoot is one step.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TrialTimeout(Exception):
    """The trial ran past ``--trial-timeout``."""


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TrialTimeout` in the guarded block after ``seconds`` (None: no limit)."""
    if not seconds:
        yield
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def _alarm(signum, frame):  # noqa: ANN001, ARG001
            raise TrialTimeout(f"timed out after {seconds:g} s (--trial-timeout)")

        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, float(seconds))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    target = threading.get_ident()
    fired = threading.Event()
    done = threading.Event()

    def _raise() -> None:
        if done.is_set():
            return
        fired.set()
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(TrialTimeout))

    timer = threading.Timer(float(seconds), _raise)
    timer.daemon = True
    timer.start()
    try:
        yield
    except TrialTimeout:
        raise TrialTimeout(f"timed out after {seconds:g} s (--trial-timeout)") from None
    finally:
        done.set()
        timer.cancel()
        if fired.is_set():  # a late async exception must not hit the code after the block
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)
