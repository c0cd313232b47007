"""Matplotlib Figures as inline SVG strings for the self-contained HTML report.

Text stays text (``svg.fonttype = "none"``): matplotlib XML-escapes it, so dataset strings in plots
(cluster names, annotator ids) cannot become markup. On top of that, mathtext is off for every text
that can carry data — titles, labels, legends, annotations and tick labels given as fixed strings — so
a ``$`` in data is shown as typed (matplotlib's own numeric tick labels, e.g. ``10^3`` on a log axis,
keep their typesetting; if anything still fails to parse, the figure is redrawn with mathtext off
everywhere). Invisible bidi controls are shown as visible ``⟨U+202E⟩``-style marks, and collections
with many points are rasterised (an embedded PNG ``data:`` image) so that a 100,000-point scatter does
not produce a 10 MB SVG.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

from prefaudit.reprs import show_invisible

if TYPE_CHECKING:
    import matplotlib.figure

#: Artists with more drawn elements than this are rasterised inside the SVG.
RASTER_THRESHOLD = 2000

_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.S)
#: matplotlib repeats every drawn string in an XML comment (escaped); the report drops them.
_COMMENT = re.compile(r"<!--.*?-->\n?", re.S)
#: Text and attribute values are XML-escaped by matplotlib, so every ``<`` starts a real tag.
_TAG = re.compile(r"<[^>]*>")
_BAD_TAG = re.compile(r"^<\s*/?\s*(script|foreignobject|iframe|object|embed|a)\b|\son[a-z]+\s*=|javascript:",
                      re.I)


def _count(artist) -> int:
    from matplotlib.collections import Collection
    from matplotlib.lines import Line2D

    if isinstance(artist, Collection):
        return max(len(artist.get_offsets()), len(artist.get_paths()))
    if isinstance(artist, Line2D):
        return len(artist.get_xdata(orig=False))
    return 0


def _numeric_tick_texts(fig: matplotlib.figure.Figure) -> set[int]:
    """ids of the tick labels (and offset texts) that matplotlib formats from numbers, not given strings."""
    from matplotlib.ticker import FixedFormatter

    keep: set[int] = set()
    for ax in fig.get_axes():
        for axis in [a for a in (getattr(ax, n, None) for n in ("xaxis", "yaxis", "zaxis")) if a is not None]:
            keep.add(id(axis.offsetText))
            for ticks, fmt in ((axis.get_major_ticks(), axis.get_major_formatter()),
                               (axis.get_minor_ticks(), axis.get_minor_formatter())):
                if not isinstance(fmt, FixedFormatter):
                    keep.update(id(t) for tick in ticks for t in (tick.label1, tick.label2))
    return keep


def _prepare(fig: matplotlib.figure.Figure, math_everywhere_off: bool = False) -> None:
    from matplotlib.collections import Collection
    from matplotlib.lines import Line2D
    from matplotlib.text import Text

    keep = set() if math_everywhere_off else _numeric_tick_texts(fig)
    for t in fig.findobj(Text):
        if id(t) not in keep:
            t.set_parse_math(False)
    for a in fig.findobj(lambda a: isinstance(a, (Collection, Line2D))):
        if _count(a) > RASTER_THRESHOLD:
            a.set_rasterized(True)


def _save(fig: matplotlib.figure.Figure, salt: str, dpi: int, math: bool) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt, "text.parse_math": math,
                                "text.usetex": False}):
        fig.savefig(buf, format="svg", dpi=dpi, metadata={"Date": None, "Creator": None})
    return buf.getvalue()


_ID = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


def _prefix_ids(svg: str, prefix: str) -> str:
    """Prefix every id and every reference to one (inside tags only), so ids are unique in a page."""
    return _TAG.sub(lambda t: _ID.sub(lambda m: m.group(1) + prefix + m.group(2), t.group()), svg)


def figure_to_svg(fig: matplotlib.figure.Figure, *, salt: str = "prefaudit", dpi: int = 96) -> str:
    """Serialise ``fig`` to an ``<svg>`` element for inline use in HTML (no XML prologue, no doctype).

    ``salt`` prefixes the SVG's ids (and the references to them: clip paths, markers), so several plots
    in one page never collide; the output is deterministic for a given figure and salt. Raises
    ``ValueError`` if the result contains anything executable (it never should: defence in depth).
    """
    _prepare(fig)
    try:
        raw = _save(fig, salt, dpi, math=True)
    except ValueError:  # mathtext that does not parse, wherever it came from: draw every text as typed
        _prepare(fig, math_everywhere_off=True)
        raw = _save(fig, salt, dpi, math=False)
    svg = _COMMENT.sub("", _PROLOGUE.sub("", raw, count=1))
    svg = _prefix_ids(show_invisible(svg), re.sub(r"[^A-Za-z0-9_-]", "-", salt) + "-")
    if any(_BAD_TAG.search(tag) for tag in _TAG.findall(svg)):
        raise ValueError("refusing to inline an SVG that contains executable content")
    return svg.strip()
