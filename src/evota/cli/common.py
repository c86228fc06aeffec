"""What every command shares: the --home option, the console, and error printing."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from evota.clock import SystemClock
from evota.deployment import Deployment, open_home
from evota.errors import EvotaError

if TYPE_CHECKING:
    from evota.server.store.db import Database

P = ParamSpec("P")
R = TypeVar("R")

# Markup off: user input (paths, reasons, ids) is printed verbatim, never interpreted; soft
# wrap so a message stays one line when stdout/stderr is a pipe or a file. A pipe or file has
# no width, so tables get room there (rich would assume 80 columns and cut target paths).
_PIPE_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
console = Console(markup=False, highlight=False, soft_wrap=True, width=_PIPE_WIDTH)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)


def done(verb: str, rest: str) -> None:
    """Print a success line: a green verb, then plain text."""
    console.print(Text.assemble((verb, "green"), " ", rest))


HomeOpt = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="EVOTA_HOME",
        help="Deployment home folder (default: $EVOTA_HOME, else ./evota-home).",
        show_default=False,
    ),
]
DEFAULT_HOME = Path("evota-home")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def open_deployment(home: Path) -> Deployment:
    return open_home(home, SystemClock())


@contextlib.contextmanager
def database(home: Path) -> Iterator[Database]:
    """The home's database, migrated to the newest schema, closed when the block ends."""
    from evota.server.store.db import open_database  # SQLAlchemy loads only when needed

    db = open_database(open_deployment(home).home.database_url())
    try:
        yield db
    finally:
        db.dispose()


def reports_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print an EvotaError as one line for the operator (no traceback) and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except EvotaError as e:
            err_console.print(Text.assemble(("error:", "bold red"), " ", e.message))
            raise typer.Exit(1) from None

    return wrapper


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))
