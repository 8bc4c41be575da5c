"""Shared consoles: results to stdout, progress and logs to stderr.

Rich markup is off: messages and table cells carry user data (file paths, policy names,
the pattern a scenario name must match, ``[a-z0-9-]``) that Rich would read as style tags
and drop. Styling is explicit, with ``rich.text.Text``.
"""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.progress import Progress, ProgressColumn

out = Console(markup=False)
UNBOUNDED_WIDTH = 10_000  # columns a table away from a terminal may take (``print_table``)
err = Console(stderr=True, markup=False)


def progress(*columns: ProgressColumn | str) -> Progress:
    """A transient progress bar on stderr, shown only on a terminal: elsewhere (a pipe, a
    log file, CI) Rich would leave a blank line there, before any error's one line."""
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


def print_table(table: RenderableType) -> None:
    """A result table on stdout. Away from a terminal (a file, a pipe, CI's log) Rich would
    fit it into 80 columns, folding a policy name or a path a letter a line; there it takes
    the width it needs (on a terminal, the terminal's width holds)."""
    if out.is_terminal:
        out.print(table)
        return
    unbounded = out.options.update(max_width=UNBOUNDED_WIDTH)
    width = max(out.width, out.measure(table, options=unbounded).maximum)
    # A console of that width on the same stream (``Console.print`` caps a width at its own).
    Console(file=out.file, markup=False, width=width).print(table)
