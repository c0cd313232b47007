"""Matplotlib Figures as inline SVG strings for the self-contained HTML report.

Text stays text (``svg.fonttype = "none"``): matplotlib XML-escapes it, so dataset strings in plots
(cluster names, annotator ids) cannot become markup. On top of that, every ``Text`` is drawn with
mathtext off (a ``$`` in data must neither be typeset nor crash the renderer), invisible bidi controls
are shown as visible ``<U+202E>``-style marks, and collections with many points are rasterised (an
embedded PNG ``data:`` image) so a 100,000-point scatter does not produce a 10 MB SVG.
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


def _prepare(fig: matplotlib.figure.Figure) -> None:
    from matplotlib.collections import Collection
    from matplotlib.lines import Line2D
    from matplotlib.text import Text

    for ax in fig.get_axes():  # make tick labels exist as Text objects before the walk below
        ax.xaxis.get_major_ticks()
        ax.yaxis.get_major_ticks()
    for t in fig.findobj(Text):
        t.set_parse_math(False)
    for a in fig.findobj(lambda a: isinstance(a, (Collection, Line2D))):
        if _count(a) > RASTER_THRESHOLD:
            a.set_rasterized(True)


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
    import matplotlib

    _prepare(fig)
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt, "text.parse_math": False,
                                "text.usetex": False}):
        fig.savefig(buf, format="svg", dpi=dpi, metadata={"Date": None, "Creator": None})
    svg = _PROLOGUE.sub("", buf.getvalue(), count=1)
    svg = _prefix_ids(show_invisible(svg), re.sub(r"[^A-Za-z0-9_-]", "-", salt) + "-")
    if any(_BAD_TAG.search(tag) for tag in _TAG.findall(svg)):
        raise ValueError("refusing to inline an SVG that contains executable content")
    return svg.strip()
