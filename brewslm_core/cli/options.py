"""What several command groups share: option parsers, a default subcommand, one error exit."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from ..common import parse_pairs


def parse_sets(values: list[str], what: str = "--set", *, json_values: bool = True) -> dict[str, Any]:
    """Overrides from repeated ``--set key=value`` (values read as JSON when they parse, else kept as
    the bare string such as ``method=full``): ``common.parse_pairs`` with a typer error."""
    try:
        return parse_pairs(values, what, json_values=json_values)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


class CreateByDefault(TyperGroup):
    """``group ARG …`` runs ``group create ARG …``; known subcommands run as usual
    (``brewslm export PROJECT RUN`` and ``brewslm export list PROJECT`` side by side)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["create", *args]
        return super().parse_args(ctx, args)


def fail(exc: Exception) -> None:
    """Exit 2 with the error and its reason code, when it carries one."""
    code = getattr(exc, "reason_code", None)
    typer.echo(f"error: {exc}" + (f" [{code}]" if code else ""), err=True)
    raise typer.Exit(2) from exc
