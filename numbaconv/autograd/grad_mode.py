"""Grad mode: whether new ops are recorded on the tape, per thread (``no_grad``, ``enable_grad``)."""

import functools
import threading


class _GradMode(threading.local):
    enabled = True


_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether new ops are recorded on the tape (per thread, like PyTorch)."""
    return _mode.enabled


class no_grad:
    """Disable recording: ``with no_grad(): ...``, ``@no_grad()`` or ``@no_grad``."""

    _enabled = False

    def __new__(cls, func=None):
        self = super().__new__(cls)
        return self(func) if callable(func) else self

    def __enter__(self):
        self._previous = _mode.enabled
        _mode.enabled = self._enabled

    def __exit__(self, *exc_info):
        _mode.enabled = self._previous

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with type(self)():
                return func(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Re-enable recording inside a ``no_grad`` region; a context manager and a decorator."""

    _enabled = True
