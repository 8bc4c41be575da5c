"""Checks of the commands' numeric options, shared so that every command refuses alike."""

from __future__ import annotations

from adbot.errors import InvalidInput


def check_range(option: str, value: int | None, low: int, high: int | None = None) -> None:
    """An out-of-range option is bad input like any other: one line naming the option and
    its range, exit code 1 (Typer's ``min=``/``max=`` would print its usage box and exit 2).
    ``None`` (an option not given) passes; the help text states the range."""
    if value is None or (low <= value and (high is None or value <= high)):
        return
    allowed = f">= {low}" if high is None else f"between {low} and {high}"
    raise InvalidInput(f"{option} must be {allowed}, got {value}")
