"""The ``tokentop`` command (its console script) and ``python -m tokentop``."""

from __future__ import annotations

import gc


def run() -> None:
    """`cli.run`, its modules imported without the cycle collector: an import makes many objects and no garbage,
    and the collections it would trigger (a full one among them) walk everything imported so far, ~8 ms of a
    start-up. What is imported then lives as long as the process: frozen, later collections skip it too."""
    gc.disable()
    try:
        from .cli import run as cli_run
    finally:
        gc.freeze()
        gc.enable()
    cli_run()


if __name__ == "__main__":
    run()
