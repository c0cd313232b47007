"""The ``prefaudit`` command. Each sub-command lives in its own module and registers itself on ``app``.

Exit codes everywhere: 0 ok, 1 only from ``gate`` (and ``validate --strict``) when a check fails,
2 bad input or usage, with a one-line message naming file, line/row and column.
"""

from __future__ import annotations

import sys

import typer

# Importing a command module registers its command on ``app``.
from prefaudit.cli import ablate as _ablate  # noqa: E402,F401
from prefaudit.cli import audit as _audit  # noqa: E402,F401
from prefaudit.cli import clean as _clean  # noqa: E402,F401
from prefaudit.cli import gate as _gate  # noqa: E402,F401
from prefaudit.cli import report as _report  # noqa: E402,F401
from prefaudit.cli import synth as _synth  # noqa: E402,F401
from prefaudit.cli import train as _train  # noqa: E402,F401
from prefaudit.cli import validate as _validate  # noqa: E402,F401
from prefaudit.cli.common import app, fail
from prefaudit.errors import PrefauditError


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning the project's errors into exit code 2."""
    try:
        code = app(args=argv, standalone_mode=False)  # click returns a command's Exit code here
    except PrefauditError as e:
        fail(str(e))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        fail("aborted")
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
