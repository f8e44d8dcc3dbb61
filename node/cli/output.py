"""What people see: tables with headers whose columns line up by display width (a Chinese character
takes two terminal cells, so padding by ``len`` misaligns them), long fields cut with a marker, and
progress bars that appear only on a terminal.

The widths come from ``rich.cells.cell_len`` (East Asian Width, as terminals render it); the table is
plain text so it pipes into ``grep``/``less`` unchanged, and rich draws the progress bars.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Protocol

from rich.cells import cell_len

ELLIPSIS = "…"
DEFAULT_MAX_CELL = 60
"""Cells wider than this are cut (``--full`` shows them whole): one audit detail can be 2,000 characters."""


def display_width(text: str) -> int:
    """Terminal cells the text occupies (CJK characters count two)."""
    return cell_len(text)


def cut(text: str, width: int) -> str:
    """The text shortened to at most ``width`` cells, ending in "…" when it was cut; newlines become spaces."""
    text = " ".join(str(text).split("\n"))
    if width <= 0 or display_width(text) <= width:
        return text
    out, used = [], 0
    for char in text:
        size = cell_len(char)
        if used + size > width - 1:
            break
        out.append(char)
        used += size
    return "".join(out) + ELLIPSIS


def pad(text: str, width: int, align: str = "<") -> str:
    gap = " " * max(0, width - display_width(text))
    return gap + text if align == ">" else text + gap


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, max_cell: int = DEFAULT_MAX_CELL,
                 align: Sequence[str] = ()) -> list[str]:
    """Lines of a table: the header, a rule, then the rows; every column as wide as its widest cell (in
    display cells), cells cut at ``max_cell`` (0: never). The last column is not padded."""
    texts = [[cut("" if value is None else str(value), max_cell) for value in row] for row in rows]
    widths = [display_width(h) for h in headers]
    for row in texts:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], display_width(value))
    aligns = list(align) + ["<"] * (len(headers) - len(align))
    last = len(headers) - 1

    def line(cells: Sequence[str]) -> str:
        parts = [cell if i == last else pad(cell, widths[i], aligns[i]) for i, cell in enumerate(cells)]
        if aligns[last] == ">":
            parts[last] = pad(cells[last], widths[last], ">")
        return "  ".join(parts).rstrip()

    return [line(list(headers)), line(["─" * w for w in widths]), *(line(row) for row in texts)]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, max_cell: int = DEFAULT_MAX_CELL,
                align: Sequence[str] = (), file: IO[str] | None = None) -> None:
    out = file or sys.stdout
    for text in format_table(headers, rows, max_cell=max_cell, align=align):
        print(text, file=out)


def print_fields(fields: Sequence[tuple[str, Any]], *, file: IO[str] | None = None) -> None:
    """Label/value lines with the labels padded to one display width (labels may be Chinese)."""
    out = file or sys.stdout
    width = max((display_width(label) for label, _ in fields), default=0)
    for label, value in fields:
        print(f"  {pad(label, width)}  {value}", file=out)


class Progress(Protocol):
    def advance(self, amount: int = 1) -> None: ...

    def total(self, total: int | None) -> None: ...


class _Silent:
    def advance(self, amount: int = 1) -> None:
        pass

    def total(self, total: int | None) -> None:
        pass


class _Bar:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: int = 1) -> None:
        self._progress.advance(self._task, amount)

    def total(self, total: int | None) -> None:
        self._progress.update(self._task, total=total)


def progress_wanted(as_json: bool = False, stream: IO[str] | None = None) -> bool:
    """Bars only for a person: on a terminal (stderr), and never under --json."""
    stream = stream or sys.stderr
    return not as_json and hasattr(stream, "isatty") and stream.isatty()


@contextlib.contextmanager
def progress(description: str, total: int | None = None, *, enabled: bool = True,
             unit: str = "") -> Iterator[Progress]:
    """A progress bar on stderr while the block runs (a no-op when not enabled)."""
    if not enabled:
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn(unit), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield _Bar(bar, task)


@contextlib.contextmanager
def status(text: str, *, enabled: bool = True) -> Iterator[None]:
    """A spinner with a line of text on stderr while one long call runs (an import, a backup) whose
    progress the node does not report; nothing when not enabled."""
    if not enabled:
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(text):
        yield


@contextlib.contextmanager
def progress_steps(*, enabled: bool = True, unit: str = "") -> Iterator[Callable[[str, int, int], None]]:
    """Bars on stderr for work reported as ``show(what, done, total)``: one bar per ``what``, drawn while
    the block runs (a no-op when not enabled). For work done in phases (a benchmark's preparation, the
    files of a backup)."""
    if not enabled:
        yield lambda what, done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
               TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def show(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield show
