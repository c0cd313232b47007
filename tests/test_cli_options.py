"""The shared audit options: every command that audits DATA offers the same ones, from one definition."""

from __future__ import annotations

import dataclasses

import pytest
import typer

from prefaudit.cli import app
from prefaudit.cli.audit_options import OPTION_TYPES, AuditOptions, audit_options


def _params(command: str) -> set[str]:
    group = typer.main.get_command(app)
    return {p.name for p in group.commands[command].params}


@pytest.mark.parametrize("command", ["audit", "gate", "report"])
def test_auditing_commands_offer_every_shared_option(command: str) -> None:
    assert {f.name for f in dataclasses.fields(AuditOptions)} <= _params(command)
    assert "opts" not in _params(command)


def test_clean_leaves_out_what_it_does_not_use() -> None:
    params = _params("clean")
    assert set(OPTION_TYPES) - {"target", "by"} <= params
    assert not {"target", "by"} & params


def test_decorator_gathers_options_and_rejects_unknown_names() -> None:
    seen = {}

    @audit_options(without=("by",))
    def command(x: int = 1, opts: AuditOptions = AuditOptions()) -> None:  # noqa: B008
        seen["opts"], seen["x"] = opts, x

    command(x=2, **{name: getattr(AuditOptions(), name) for name in OPTION_TYPES if name != "by"} | {"seed": 7})
    assert seen["x"] == 2 and seen["opts"].seed == 7 and seen["opts"].by is None
    with pytest.raises(ValueError, match="unknown audit options"):
        audit_options(without=("nope",))
