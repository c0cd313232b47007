"""The options shared by the commands that read and audit DATA (``audit``, ``gate``, ``report``, ``clean``).

Written once: :class:`AuditOptions` holds them, :func:`audit_options` puts them on a typer command's
signature (so each appears in ``--help`` and parses as usual) and hands them to the command as one
``opts: AuditOptions``, and :meth:`AuditOptions.run_audit` loads DATA and audits it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from prefaudit.cli.common import (
    AnnotationsOpt,
    ColumnOpt,
    FormatOpt,
    LabelOpt,
    SeedOpt,
    TargetOpt,
    load_input,
    load_target_input,
    show_progress,
)

if TYPE_CHECKING:
    from prefaudit.audit import Audit
    from prefaudit.data.preference_set import PreferenceSet
    from prefaudit.embed import Embedder

EvalOpt = Annotated[Path | None, typer.Option(
    "--eval", help="An eval set: its prompts are checked for leakage into DATA.")]
NoEmbeddingsOpt = Annotated[bool, typer.Option(
    "--no-embeddings", help="Run only what needs no embedding model (the fast path for large data).")]
ByOpt = Annotated[list[str] | None, typer.Option(
    "--by", help="Break the results down by this metadata column (repeatable).")]
TokenizerOpt = Annotated[str | None, typer.Option(
    "--tokenizer", help="Tokenizer for the truncation audit: a local Hugging Face path, or 'tiny'.")]
MaxLengthOpt = Annotated[int, typer.Option("--max-length", help="Token budget of the truncation audit.")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="Embedding model name or local path (default: the bundled all-MiniLM-L6-v2).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
MaxModelPairsOpt = Annotated[int, typer.Option(
    "--max-model-pairs", help="Above this many pairs, the model-fitting analyzers (noise without annotations, "
    "bias) are fitted on a seeded random sample of this size (clean still scores every pair); 0: no limit.")]


@dataclass
class AuditOptions:
    """How to read DATA and audit it: every option the auditing commands share, with its CLI default."""

    annotations: Path | None = None
    target: Path | None = None
    eval_: Path | None = None
    fmt: str = "auto"
    columns: list[str] | None = None
    labels: list[str] | None = None
    no_embeddings: bool = False
    by: list[str] | None = None
    tokenizer: str | None = None
    max_length: int = 256
    model: str | None = None
    max_model_pairs: int = 50_000
    seed: int = 0

    def load(self, data: Path) -> PreferenceSet:
        """DATA (+ annotations) as a PreferenceSet."""
        return load_input(data, self.annotations, self.fmt, self.columns, self.labels)

    def embedder(self) -> Embedder | None:
        """The embedder ``--model`` names (None: the analyzers' default, or embeddings off)."""
        if self.model is None or self.no_embeddings:
            return None
        from prefaudit.embed import Embedder

        return Embedder(self.model, progress=show_progress())

    def run_audit(self, data: Path) -> Audit:
        """Load the inputs and audit them; the loading time is the audit's ``read`` timing."""
        from prefaudit.audit import StageClock, audit

        clock = StageClock()
        pset = self.load(data)
        tgt = load_target_input(self.target, self.columns)
        clock.lap("read")
        result = audit(pset, target=tgt, eval=self.eval_, seed=self.seed, embeddings=not self.no_embeddings,
                       embedder=self.embedder(), tokenizer=self.tokenizer, max_length=self.max_length,
                       by=tuple(self.by or ()), progress=show_progress(),
                       max_model_pairs=self.max_model_pairs or None)
        result.timings = {**clock.wall, **clock.cpu, **result.timings}
        return result


#: The typer annotation of each option, in the order ``--help`` lists them.
OPTION_TYPES: dict[str, Any] = {
    "annotations": AnnotationsOpt, "target": TargetOpt, "eval_": EvalOpt, "fmt": FormatOpt,
    "columns": ColumnOpt, "labels": LabelOpt, "no_embeddings": NoEmbeddingsOpt, "by": ByOpt,
    "tokenizer": TokenizerOpt, "max_length": MaxLengthOpt, "model": ModelOpt,
    "max_model_pairs": MaxModelPairsOpt, "seed": SeedOpt,
}
assert list(OPTION_TYPES) == [f.name for f in fields(AuditOptions)]

F = TypeVar("F", bound=Callable[..., Any])


def audit_options(*, without: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorate a typer command that takes ``opts: AuditOptions``: its signature gets the shared options
    (all but ``without``, which keep their defaults) in place of ``opts``, and the command receives
    them gathered into one :class:`AuditOptions`."""
    unknown = set(without) - set(OPTION_TYPES)
    if unknown:
        raise ValueError(f"unknown audit options: {sorted(unknown)}")

    def decorate(command: F) -> F:
        sig = inspect.signature(command, eval_str=True)
        own = list(sig.parameters.values())
        at = [p.name for p in own].index("opts")
        defaults = AuditOptions()
        shared = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind,
                                    default=getattr(defaults, name))
                  for name, kind in OPTION_TYPES.items() if name not in without]

        @functools.wraps(command)
        def run(**kw: Any) -> Any:
            opts = AuditOptions(**{p.name: kw.pop(p.name) for p in shared})
            return command(opts=opts, **kw)

        params = own[:at] + shared + own[at + 1:]
        run.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run  # type: ignore[return-value]

    return decorate
