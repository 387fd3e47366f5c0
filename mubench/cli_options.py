"""Typer option types shared by the command modules (mubench/cli.py, mubench/cli_submit.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

StoreOption = Annotated[Optional[Path], typer.Option("--store", help="SQLite store (default: $MUBENCH_HOME/results.sqlite)")]
