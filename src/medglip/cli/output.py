"""What commands print on stdout: tables (rich on a terminal, tab-separated rows in a pipe) and JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeGuard

import typer
from rich.console import Console
from rich.table import Table

from .app import console

#: ``--json -``: the JSON goes to stdout (and nothing else does)
STDOUT = "-"


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def print_rows(header: Sequence[str], rows: Sequence[Sequence[Any]], table: Table | None = None) -> None:
    """``table`` (default: a plain one of ``rows``) on a terminal; full rows as tab-separated values (a header
    line first) when stdout is a pipe or a file, where a table would be cut to 80 columns ("Tota…"), as git
    and kubectl do."""
    if stdout_is_terminal():
        if table is None:
            table = Table(*header)
            for row in rows:
                table.add_row(*(str(c) for c in row))
        Console().print(table)
        return
    for row in (header, *rows):
        typer.echo("\t".join(" ".join(str(cell).split()) for cell in row))


def write_json(payload: Any, dest: Path | str, *, indent: int | None = 1) -> None:
    """``payload`` as JSON into the file ``dest``, or on stdout when ``dest`` is ``-``."""
    text = json.dumps(payload, indent=indent)
    if str(dest) == STDOUT:
        typer.echo(text)
        return
    Path(dest).write_text(text + "\n", encoding="utf-8")
    console.print(f"json: {dest}", highlight=False)


def json_to_stdout(dest: Path | str | None) -> TypeGuard[Path | str]:
    return dest is not None and str(dest) == STDOUT
