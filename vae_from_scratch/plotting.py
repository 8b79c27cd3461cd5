"""The book's figure style: one call at the top of a chapter, ``use_book_style()``.

* Colours: the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), which stays
  distinguishable under the common colour-vision deficiencies. Series are told apart by line style
  as well, so a figure also reads in greyscale: the property cycle steps colour and line style
  together. Markers are not in the cycle (a 1000-point curve would become a band of markers);
  ``series_style(i)`` gives the i-th colour, line style and marker for scatter plots and short
  curves.
* Text: tick labels, legends and axis labels at 9 points or more, so that a 7-inch figure scaled
  down to a 400 px phone screen still has legible labels.
* Resolution: inline figures are stored as PNG at twice the pixel density ("retina"), shown at
  their nominal size, so they stay sharp when zoomed and in the PDF. PNG rather than SVG because
  nbval compares SVG text (which differs between runs) but not PNG bytes.
"""

from cycler import cycler

#: Okabe-Ito colours. The first five have at least 3:1 contrast against white (WCAG non-text
#: contrast); orange and sky blue come last, and yellow #F0E442 (1.3:1) is left out.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#000000", "#E69F00", "#56B4E9")
#: One marker and one line style per colour, so no two series share any of the three.
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3)))

MIN_FONT_SIZE = 9

BOOK_RC = {
    "axes.prop_cycle": cycler(color=OKABE_ITO) + cycler(linestyle=LINESTYLES),
    "lines.markersize": 4,
    "lines.linewidth": 1.6,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": MIN_FONT_SIZE,
    "ytick.labelsize": MIN_FONT_SIZE,
    "legend.fontsize": MIN_FONT_SIZE,
    "legend.title_fontsize": MIN_FONT_SIZE,
    "figure.titlesize": 11,
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "image.cmap": "viridis",
    "axes.grid": False,
}


def series_style(i):
    """Colour, line style and marker of the i-th series (cycling), e.g. ``ax.plot(x, y, **series_style(1))``
    or ``ax.scatter(x, y, c=series_style(1)["color"], marker=series_style(1)["marker"])``."""
    i = int(i) % len(OKABE_ITO)
    return {"color": OKABE_ITO[i], "linestyle": LINESTYLES[i], "marker": MARKERS[i]}


def use_book_style(inline_format="retina"):
    """Apply the book's matplotlib style (colours, markers, line styles, font sizes).

    Call it once near the top of a chapter, after importing matplotlib::

        from vae_from_scratch.plotting import use_book_style
        use_book_style()

    ``inline_format`` ("retina", "png" or "svg") sets how Jupyter stores inline
    figures; outside IPython that part is skipped.
    """
    import matplotlib as mpl

    if inline_format not in ("retina", "png", "svg"):
        raise ValueError(f"inline_format must be 'retina', 'png' or 'svg', not {inline_format!r}")
    mpl.rcParams.update(BOOK_RC)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats(inline_format)
