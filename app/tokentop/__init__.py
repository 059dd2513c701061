"""tokentop: live cost, token and rate-limit monitor for LLM agents."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["record", "record_response"]


def __getattr__(name: str):  # lazy: the CLI's start-up does not pay for the recorder
    if name in __all__:
        from . import recorder as _recorder

        return getattr(_recorder, name)
    raise AttributeError(name)
