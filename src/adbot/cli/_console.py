"""Shared consoles: results to stdout, progress and logs to stderr.

Rich markup is off: messages and table cells carry user data (file paths, policy names,
the pattern a scenario name must match, ``[a-z0-9-]``) that Rich would read as style tags
and drop. Styling is explicit, with ``rich.text.Text``.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress, ProgressColumn

out = Console(markup=False)
err = Console(stderr=True, markup=False)


def progress(*columns: ProgressColumn | str) -> Progress:
    """A transient progress bar on stderr, shown only on a terminal: elsewhere (a pipe, a
    log file, CI) Rich would leave a blank line there, before any error's one line."""
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)
