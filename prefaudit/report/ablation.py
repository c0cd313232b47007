"""The report's ablation slot: ``ablation.json`` (written by ``prefaudit ablate``) -> tables and a plot.

Expected input (DESIGN.md, "Training and ablation outputs")::

    {"arms": {"raw": {"n_pairs": 9000, "per_seed": [{"seed": 0, "preference_accuracy": 0.61}, ...],
                      "mean": {"preference_accuracy": 0.62}, "ci": {"preference_accuracy": [0.60, 0.64]}},
              "cleaned": {...}},
     "differences": [{"arm": "cleaned", "baseline": "raw", "metric": "preference_accuracy",
                      "value": 0.03, "ci": [0.01, 0.05]}],
     ...any other keys (settings) are shown as a small table}

``arms`` may also be a list of objects with an ``arm`` (or ``name``) key; per-seed results may be a list
or a mapping seed -> metrics under ``per_seed`` or ``seeds``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefaudit.errors import InputError
from prefaudit.report.tables import Table, cell, mapping_table

if TYPE_CHECKING:
    import matplotlib.figure

MAX_PLOT_METRICS = 4


@dataclass
class Arm:
    name: str
    n_pairs: Any
    n_seeds: int | None
    mean: dict[str, float | None]
    ci: dict[str, tuple[float, float] | None]


@dataclass
class AblationView:
    arms_table: Table
    differences: Table | None
    settings: Table | None
    figure: Any = None  # matplotlib Figure, turned into SVG by the renderer
    notes: list[str] = field(default_factory=list)


def load_ablation(spec: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """An ablation dict from a dict, an ``ablation.json`` path, or the directory holding it."""
    if isinstance(spec, Mapping):
        return dict(spec)
    p = Path(spec)
    if p.is_dir():
        p = p / "ablation.json"
    if not p.is_file():
        raise InputError("ablation results not found (expected DIR/ablation.json from `prefaudit ablate`)",
                         path=str(p))
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"not valid JSON ({e.__class__.__name__})", path=str(p),
                         line=getattr(e, "lineno", None)) from None
    if not isinstance(d, dict) or "arms" not in d:
        raise InputError("not an ablation.json (no 'arms')", path=str(p))
    return d


def _float(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(float(x)) else None


def _ci(x: Any) -> tuple[float, float] | None:
    if isinstance(x, (list, tuple)) and len(x) == 2:
        lo, hi = _float(x[0]), _float(x[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def parse_arms(arms: Any) -> list[Arm]:
    items = list(arms.items()) if isinstance(arms, Mapping) else [
        (a.get("arm", a.get("name", f"arm {i}")), a) for i, a in enumerate(arms or []) if isinstance(a, Mapping)]
    out = []
    for name, a in items:
        if not isinstance(a, Mapping):
            continue
        seeds = a.get("per_seed", a.get("seeds"))
        n_seeds = len(seeds) if isinstance(seeds, (list, tuple, Mapping)) else None
        mean = {str(k): _float(v) for k, v in (a.get("mean") or {}).items()} if isinstance(a.get("mean"), Mapping) else {}
        ci = {str(k): _ci(v) for k, v in (a.get("ci") or {}).items()} if isinstance(a.get("ci"), Mapping) else {}
        out.append(Arm(str(name), a.get("n_pairs"), n_seeds, mean, ci))
    return out


def _fmt_ci(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.4g}, {ci[1]:.4g}]"


def plot_arms(arms: list[Arm], metrics: list[str]) -> matplotlib.figure.Figure:
    """One panel per metric: each arm's mean with its 95% CI."""
    from prefaudit.plots import new_figure

    shown = metrics[:MAX_PLOT_METRICS]
    fig = new_figure(min(3.2 * len(shown), 11), 0.9 + 0.38 * len(arms))
    axes = fig.subplots(1, len(shown), sharey=True, squeeze=False)[0]
    for ax, metric in zip(axes, shown, strict=True):
        for i, arm in enumerate(arms):
            v, ci = arm.mean.get(metric), arm.ci.get(metric)
            if v is None:
                continue
            if ci is not None:
                ax.plot(ci, [i, i], color="#555", lw=2)
            ax.plot([v], [i], "o", color="#1f5fa8")
        ax.set_title(metric, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(arms)), [a.name for a in arms])
    axes[0].invert_yaxis()
    return fig


def ablation_view(d: Mapping[str, Any]) -> AblationView:
    """Tables (arms, differences, settings) and the arms plot of an ablation dict."""
    arms = parse_arms(d.get("arms"))
    metrics = list(dict.fromkeys(m for a in arms for m in a.mean))
    cols = ["arm", "pairs", "seeds", *[f"{m} (95% CI)" for m in metrics]]
    rows = [[cell(a.name, 120), cell(a.n_pairs), cell(a.n_seeds),
             *[cell(a.mean.get(m)) + _fmt_ci(a.ci.get(m)) for m in metrics]] for a in arms]
    arms_table = Table("arms", cols, rows, len(rows), [False, True, True, *[True] * len(metrics)])
    diffs = [x for x in d.get("differences") or [] if isinstance(x, Mapping)]
    differences = None
    if diffs:
        drows = []
        for x in diffs:
            ci = _ci(x.get("ci"))
            excl = "—" if ci is None else ("yes" if ci[0] > 0 or ci[1] < 0 else "no")
            drows.append([cell(x.get("arm")), cell(x.get("baseline")), cell(x.get("metric")),
                          cell(_float(x.get("value"))), _fmt_ci(ci).strip() or "—", excl])
        differences = Table("differences (arm − baseline)", ["arm", "baseline", "metric", "difference",
                                                               "95% CI", "CI excludes 0"], drows, len(drows),
                            [False, False, False, True, True, False])
    rest = {k: v for k, v in d.items() if k not in ("arms", "differences")}
    settings = mapping_table("settings", rest) if rest else None
    view = AblationView(arms_table, differences, settings)
    if not arms:
        view.notes.append("the ablation results hold no arms")
    elif any(a.mean for a in arms):
        view.figure = plot_arms(arms, metrics)
    return view
