"""The one progress bar of the CLI (rich, on stderr; gone when the work ends)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Update = Callable[[int, "int | None", str], None]


@contextmanager
def progress_bar(label: str, *, disable: bool = False) -> Iterator[Update]:
    """Yield ``update(done, total, message)``; a no-op when ``disable`` (``--json``, other ranks)."""
    if disable:
        yield lambda done, total, message: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]{label}[/] {{task.description}}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        shown = bar.add_task("starting", total=None)

        def update(done: int, total: int | None, message: str) -> None:
            bar.update(shown, completed=done or 0, total=total, description=message)

        yield update
