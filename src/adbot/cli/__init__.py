"""The ``adbot`` command line (Typer + Rich): one command group per module."""
