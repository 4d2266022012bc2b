"""The report's figures as PNG bytes, drawn from arrays that the experiments have already computed.

Nothing here computes a result: each function takes images, verdicts or numbers and returns
the bytes of one PNG, ready to write beside ``report.md`` or to embed in ``report.html``
through :func:`png_data_uri`.

* :func:`pipeline_strip` — Fig. 6 of the paper: plain → speckled → encrypted → decrypted → despeckled.
* :func:`images_with_histograms` — Figs. 7–9: images with their grey-level histograms beneath.
* :func:`image_grid` — Fig. 10 (decryption with keys A–D) and any other grid of images.
* :func:`attack_matrix_figure` — the scheme × attack verdicts as a coloured grid.
* :func:`bar_chart` — grouped bars, e.g. entropy per organ and scheme against the paper's value.

Display scaling follows what the image is. Cipher images and keys are shown over their
full grey range, ``0 … 2^bits − 1`` (by default the dtype's range), so that a cipher that
does not fill its range looks it; plain medical images are better seen stretched to their
1st–99th percentile (``stretch=True``), as radiology viewers window them.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never through
``pyplot``: no global state, no GUI backend, safe to call from several threads. matplotlib
is an optional dependency (``pip install 'deepkedi[report]'``), imported only when a figure
is drawn.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from deepkedi.errors import require_extra

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "attack_matrix_figure",
    "bar_chart",
    "histogram_range",
    "image_grid",
    "images_with_histograms",
    "pipeline_strip",
    "png_data_uri",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Histogram bins, for 8-bit and 16-bit images alike (Figs. 8 and 9 of the paper).
HISTOGRAM_BINS = 256

# Cell colours of the attack matrix (light, so that the black verdict word stays legible).
_VERDICT_COLOURS: dict[str, tuple[float, float, float]] = {
    "resisted": (0.79, 0.91, 0.79),
    "broken": (0.96, 0.78, 0.76),
}
_MISSING_COLOUR = (0.85, 0.85, 0.85)

_PANEL_INCHES = 2.6


# --------------------------------------------------------------------------- helpers


def _new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas; matplotlib imported here so that it stays optional."""
    require_extra("matplotlib", "report", feature="the report's figures")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _png_bytes(figure: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _check_panels(panels: Sequence[tuple[str, np.ndarray]], caller: str) -> list[tuple[str, np.ndarray]]:
    """``(label, image)`` pairs with each image a non-empty 2-D array; ValueError otherwise."""
    checked = []
    for label, image in panels:
        array = np.asarray(image)
        if array.ndim != 2 or array.size == 0:
            raise ValueError(
                f"{caller}: panel {label!r} has shape {array.shape}; pass one non-empty 2-D grey plane per panel"
            )
        if not (
            np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating) or array.dtype == np.bool_
        ):
            raise ValueError(f"{caller}: panel {label!r} has dtype {array.dtype}; pass integer or float pixels")
        checked.append((str(label), array))
    if not checked:
        raise ValueError(f"{caller} needs at least one (label, image) panel")
    return checked


def _per_panel_stretch(stretch: bool | Sequence[bool], count: int, caller: str) -> list[bool]:
    if isinstance(stretch, (bool, np.bool_)):
        return [bool(stretch)] * count
    flags = [bool(flag) for flag in stretch]
    if len(flags) != count:
        raise ValueError(f"{caller}: stretch has {len(flags)} flags for {count} panels; pass one per panel or a bool")
    return flags


def _check_bits(bits: int | None, caller: str) -> None:
    if bits is not None and not 1 <= bits <= 32:
        raise ValueError(f"{caller}: bits={bits}; pass the images' bit depth, 1 to 32 (8 or 16 for DICOM)")


def _full_range(image: np.ndarray, bits: int | None) -> tuple[float, float]:
    """``0 … 2^bits − 1``, else the dtype's range; for floats, the data's own range."""
    if bits is not None:
        return 0.0, float(2**bits - 1)
    if image.dtype == np.bool_:
        return 0.0, 1.0
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return float(info.min), float(info.max)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def histogram_range(image: np.ndarray, *, bits: int) -> tuple[float, float]:
    """The grey levels a histogram spans: ``0 … 2^k`` for the bits ``k`` the image's values need.

    ``k`` is the bit length of the image's largest value, at least 8 and at most ``bits``: a
    12-bit CT stored in 16-bit words spans 0 … 4096, a 16-bit key 0 … 65536, an 8-bit image
    0 … 256. So a histogram is not squashed into the first sixteenth of a 16-bit axis, and
    images of one stored depth (a plain image and its cipher image at 8 bits) share an axis.
    Negative values (signed data) extend the range down to ``−2^j`` in the same way.

    Examples
    --------
    >>> histogram_range(np.array([[0, 2191]], dtype=np.uint16), bits=16)
    (0.0, 4096.0)
    >>> histogram_range(np.array([[3, 200]], dtype=np.uint8), bits=8)
    (0.0, 256.0)
    """
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, float(2 ** min(8, bits))

    def span(magnitude: float) -> float:
        return float(2 ** min(max(8, int(np.ceil(magnitude)).bit_length()), bits))

    high = span(max(float(finite.max()), 0.0))
    low = -span(-float(finite.min())) if finite.min() < 0 else 0.0
    return low, high


def _display_range(image: np.ndarray, *, stretch: bool, bits: int | None) -> tuple[float, float]:
    """vmin, vmax: the 1st–99th percentile when stretched, else the full grey range."""
    if not stretch:
        return _full_range(image, bits)
    values = image.astype(np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [1, 99]))
    if hi <= lo:  # a mostly constant image (black background): fall back to its extremes
        lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _show_image(axes: Axes, label: str, image: np.ndarray, *, stretch: bool, bits: int | None) -> None:
    vmin, vmax = _display_range(image, stretch=stretch, bits=bits)
    axes.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    axes.set_title(label, fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])


# --------------------------------------------------------------------------- image figures


def _draw_grid(
    panels: list[tuple[str, np.ndarray]], flags: list[bool], *, bits: int | None, columns: int, title: str, dpi: int
) -> bytes:
    """Checked panels in rows of ``columns``, unused cells blank: the body of the strip and the grid."""
    rows = -(-len(panels) // columns)
    figure = _new_figure(_PANEL_INCHES * columns, _PANEL_INCHES * rows + 0.6)
    grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(grid.ravel()):
        if index < len(panels):
            label, image = panels[index]
            _show_image(axes, label, image, stretch=flags[index], bits=bits)
        else:
            axes.set_axis_off()
    figure.suptitle(title)
    figure.tight_layout()
    return _png_bytes(figure, dpi)


def pipeline_strip(
    panels: Sequence[tuple[str, np.ndarray]],
    *,
    title: str,
    stretch: bool | Sequence[bool] = False,
    bits: int | None = None,
    dpi: int = 100,
) -> bytes:
    """The stages of the pipeline in one row, as in Fig. 6 of the paper.

    Fig. 6 shows (a) the plain image, (b) speckled, (c) encrypted with the generated key,
    (d) decrypted with the correct key, (e) despeckled; the panels are drawn in the order
    given.

    Parameters
    ----------
    panels
        ``(label, image)`` pairs, each image a 2-D grey plane (uint8, uint16 or float);
        shapes may differ.
    title
        The figure's suptitle.
    stretch
        Show a panel over its 1st–99th percentile instead of its full grey range; one bool
        for all panels or one per panel (e.g. ``[True, True, False, True, True]`` to window
        every stage but the cipher image).
    bits
        Bit depth of the full grey range ``0 … 2^bits − 1``; by default each image's dtype.
    dpi
        Resolution of the PNG.

    Returns
    -------
    bytes
        The PNG.

    Raises
    ------
    ValueError
        No panels, a panel that is not a non-empty 2-D array, or a stretch list of the wrong length.

    Examples
    --------
    >>> plain = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    >>> png = pipeline_strip([("plain", plain), ("encrypted", plain[::-1])], title="Fig. 6")
    >>> png[:8] == PNG_SIGNATURE
    True
    """
    checked = _check_panels(panels, "pipeline_strip")
    flags = _per_panel_stretch(stretch, len(checked), "pipeline_strip")
    _check_bits(bits, "pipeline_strip")
    return _draw_grid(checked, flags, bits=bits, columns=len(checked), title=title, dpi=dpi)


def images_with_histograms(
    panels: Sequence[tuple[str, np.ndarray]],
    *,
    bits: int,
    title: str,
    stretch: bool | Sequence[bool] = False,
    dpi: int = 100,
) -> bytes:
    """A row of images with their grey-level histograms beneath, as in Figs. 7–9 of the paper.

    Fig. 8 sets the keys' flat histograms beside the input's; Fig. 9 the encrypted images'
    beside the noisy plain images'. Every histogram has :data:`HISTOGRAM_BINS` (256) bins over
    the range its image's values use (:func:`histogram_range`: 0 … 4096 for 12-bit CT in
    16-bit words, 0 … 65536 for a 16-bit key), named under its x axis, and counts pixels on
    its y axis.

    Parameters
    ----------
    panels
        ``(label, image)`` pairs, each a 2-D grey plane (uint8, uint16 or float); shapes may differ.
    bits
        Bit depth of the images: the widest histogram range and, unless stretched, the display range.
    title
        The figure's suptitle.
    stretch
        Show an image over its 1st–99th percentile (the histogram still spans the full range);
        one bool for all or one per panel.
    dpi
        Resolution of the PNG.

    Returns
    -------
    bytes
        The PNG.

    Raises
    ------
    ValueError
        No panels, a panel that is not a non-empty 2-D array, ``bits`` outside 1–32, or a
        stretch list of the wrong length.

    Examples
    --------
    >>> key = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    >>> png = images_with_histograms([("key A", key)], bits=8, title="Fig. 8")
    >>> png[:8] == PNG_SIGNATURE
    True
    """
    checked = _check_panels(panels, "images_with_histograms")
    flags = _per_panel_stretch(stretch, len(checked), "images_with_histograms")
    if bits is None:
        raise ValueError("images_with_histograms: pass bits, the images' bit depth (8 or 16)")
    _check_bits(bits, "images_with_histograms")
    from matplotlib.ticker import MaxNLocator

    figure = _new_figure(_PANEL_INCHES * len(checked), 2 * _PANEL_INCHES + 0.5)
    grid = figure.subplots(2, len(checked), squeeze=False, gridspec_kw={"height_ratios": [3, 2]})
    for column, ((label, image), flag) in enumerate(zip(checked, flags, strict=True)):
        _show_image(grid[0, column], label, image, stretch=flag, bits=bits)
        values = image.astype(np.float64).ravel()
        low, high = histogram_range(image, bits=bits)
        counts, edges = np.histogram(values[np.isfinite(values)], bins=HISTOGRAM_BINS, range=(low, high))
        axes = grid[1, column]
        # Outlined as well as filled, so that a peak one bin wide (a phantom's flat tissue) stays visible.
        axes.stairs(counts, edges, fill=True, facecolor="0.3", edgecolor="0.3", linewidth=0.8)
        _clip_spike(axes, counts, edges)

        axes.set_xlim(low, high)
        axes.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        axes.set_xlabel(f"grey level ({int(high - 1).bit_length()}-bit range)", fontsize=8)

        if column == 0:
            axes.set_ylabel("count", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
    figure.suptitle(title)
    figure.tight_layout()
    return _png_bytes(figure, dpi)


#: A histogram's tallest bin is cut off, and labelled with its count, when it is more than this
#: many times the next tallest (a black background in one bin would flatten everything else).
SPIKE_RATIO = 3.0


def _clip_spike(axes: Axes, counts: np.ndarray, edges: np.ndarray) -> None:
    """Cut the y axis above the second-tallest bin when one bin towers over it, and say so on the plot."""
    if counts.size < 2:
        return
    order = np.argsort(counts)
    tallest, second = int(order[-1]), float(counts[order[-2]])
    if second <= 0 or counts[tallest] <= SPIKE_RATIO * second:
        return
    top = 1.25 * second
    axes.set_ylim(0.0, top)
    centre = 0.5 * (edges[tallest] + edges[tallest + 1])
    share = counts[tallest] / counts.sum()
    axes.annotate(
        f"{int(counts[tallest]):,} ({share:.0%}) ↑",
        xy=(centre, top),
        xytext=(3, -2),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize=7,
    )


def image_grid(
    panels: Sequence[tuple[str, np.ndarray]],
    *,
    columns: int,
    title: str,
    stretch: bool | Sequence[bool] = False,
    bits: int | None = None,
    dpi: int = 100,
) -> bytes:
    """Images in a grid of ``columns`` per row, as Fig. 10 of the paper (decryption with keys A–D).

    Fig. 10 shows the noisy image, its encryption under key A, and that cipher image decrypted
    with keys A, B, C and D; only A restores the image. Any other set of labelled images
    (the four keys of Fig. 7, ``c1 ⊕ c2`` leaks) is drawn the same way; unused cells stay empty.

    Parameters
    ----------
    panels
        ``(label, image)`` pairs, each a 2-D grey plane (uint8, uint16 or float); shapes may differ.
    columns
        Panels per row, at least 1 (fewer if there are fewer panels).
    title
        The figure's suptitle.
    stretch
        Show a panel over its 1st–99th percentile instead of its full grey range; one bool
        for all panels or one per panel.
    bits
        Bit depth of the full grey range ``0 … 2^bits − 1``; by default each image's dtype.
    dpi
        Resolution of the PNG.

    Returns
    -------
    bytes
        The PNG.

    Raises
    ------
    ValueError
        No panels, a panel that is not a non-empty 2-D array, ``columns`` below 1, or a
        stretch list of the wrong length.

    Examples
    --------
    >>> keys = np.random.default_rng(1).integers(0, 2**16, (4, 24, 40), dtype=np.uint16)
    >>> png = image_grid([(f"key {k}", key) for k, key in zip("ABCD", keys)], columns=2, title="Fig. 7")
    >>> png[:8] == PNG_SIGNATURE
    True
    """
    checked = _check_panels(panels, "image_grid")
    flags = _per_panel_stretch(stretch, len(checked), "image_grid")
    _check_bits(bits, "image_grid")
    if int(columns) < 1:
        raise ValueError(f"image_grid: columns={columns}; pass at least 1")
    return _draw_grid(checked, flags, bits=bits, columns=min(int(columns), len(checked)), title=title, dpi=dpi)


# --------------------------------------------------------------------------- charts


def attack_matrix_figure(
    schemes: Sequence[str],
    attacks: Sequence[str],
    verdicts: Mapping[tuple[str, str], str],
    *,
    title: str,
    dpi: int = 100,
) -> bytes:
    """The attack suite's verdicts as a colour grid: schemes as rows, attacks as columns.

    Not a figure of the paper, which runs no attacks; it summarises the report's scheme ×
    attack table. A cell is green for ``"resisted"``, red for ``"broken"`` and grey otherwise;
    it carries the verdict word, or ``—`` where ``verdicts`` has no entry (an attack not run
    on that scheme).

    Parameters
    ----------
    schemes
        Row labels, in order.
    attacks
        Column labels, in order.
    verdicts
        ``{(scheme, attack): verdict}``; missing pairs are allowed, extra pairs are ignored.
    title
        The figure's suptitle.
    dpi
        Resolution of the PNG.

    Returns
    -------
    bytes
        The PNG.

    Raises
    ------
    ValueError
        No schemes or no attacks.

    Examples
    --------
    >>> png = attack_matrix_figure(["paper", "aead"], ["known plaintext"],
    ...                            {("paper", "known plaintext"): "broken"}, title="attack suite")
    >>> png[:8] == PNG_SIGNATURE
    True
    """
    schemes, attacks = [str(s) for s in schemes], [str(a) for a in attacks]
    if not schemes or not attacks:
        raise ValueError("attack_matrix_figure needs at least one scheme and one attack")
    colours = np.empty((len(schemes), len(attacks), 3))
    words: list[list[str]] = []
    for row, scheme in enumerate(schemes):
        words.append([])
        for column, attack in enumerate(attacks):
            verdict = verdicts.get((scheme, attack))
            key = str(verdict).strip().lower() if verdict is not None else ""
            colours[row, column] = _VERDICT_COLOURS.get(key, _MISSING_COLOUR)
            words[row].append("—" if verdict is None else str(verdict))
    width = 2.0 + 1.3 * len(attacks)
    height = 1.6 + 0.45 * len(schemes)
    figure = _new_figure(width, height)
    axes = figure.subplots()
    axes.imshow(colours, aspect="auto", interpolation="nearest")
    for row in range(len(schemes)):
        for column in range(len(attacks)):
            axes.text(column, row, words[row][column], ha="center", va="center", fontsize=8)
    axes.set_xticks(range(len(attacks)), attacks, rotation=30, ha="right", fontsize=8)
    axes.set_yticks(range(len(schemes)), schemes, fontsize=8)
    # Thin white lines between cells, drawn on the minor grid so that labels stay centred.
    axes.set_xticks(np.arange(-0.5, len(attacks)), minor=True)
    axes.set_yticks(np.arange(-0.5, len(schemes)), minor=True)
    axes.grid(which="minor", color="white", linewidth=2)
    axes.tick_params(which="both", length=0)
    figure.suptitle(title)
    figure.tight_layout()
    return _png_bytes(figure, dpi)


def bar_chart(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str,
    title: str,
    reference: float | Sequence[float] | None = None,
    reference_label: str = "",
    dpi: int = 100,
) -> bytes:
    """Grouped bars, one group per entry of ``groups`` and one bar per series in each group.

    Serves the report's comparison charts beside Tables 1–3 of the paper, e.g. cipher-image
    entropy per organ or modality for each scheme, with the entropy expected of random words
    (one value per group) or the paper's reported value as the ``reference``. The legend sits
    below the axes, where it hides no bar.

    Parameters
    ----------
    groups
        Labels on the x axis.
    series
        ``{series label: values}``, one value per group (NaN leaves a gap).
    ylabel
        The y axis label, with its unit.
    title
        The figure's suptitle.
    reference
        A dashed black line at this value across the chart (e.g. the paper's figure), or one
        value per group, drawn as a dashed line across that group's bars (NaN: none); none by
        default.
    reference_label
        The line's legend entry.
    dpi
        Resolution of the PNG.

    Returns
    -------
    bytes
        The PNG.

    Raises
    ------
    ValueError
        No groups, no series, or a series or per-group reference whose length differs from ``groups``.

    Examples
    --------
    >>> png = bar_chart(["brain", "lung"], {"paper": [7.2, 7.1], "aead": [7.99, 7.99]},
    ...                 ylabel="entropy (bits)", title="cipher entropy", reference=7.99)
    >>> png[:8] == PNG_SIGNATURE
    True
    """
    groups = [str(g) for g in groups]
    if not groups:
        raise ValueError("bar_chart needs at least one group")
    if not series:
        raise ValueError("bar_chart needs at least one series")
    values: dict[str, np.ndarray] = {}
    for name, data in series.items():
        array = np.asarray(data, dtype=np.float64)
        if array.shape != (len(groups),):
            raise ValueError(f"bar_chart: series {name!r} has {array.size} values for {len(groups)} groups")
        values[str(name)] = array
    references = None if reference is None else np.asarray(reference, dtype=np.float64)
    if references is not None and references.ndim > 0 and references.shape != (len(groups),):
        raise ValueError(f"bar_chart: reference has {references.size} values for {len(groups)} groups")
    width = min(0.8 / len(values), 0.35)
    positions = np.arange(len(groups), dtype=np.float64)
    # About 0.22 in per bar, between 5 and 12 in wide; the legend takes rows of up to four entries below.
    bars = len(groups) * len(values)
    entries = len(values) + (reference is not None)
    legend_rows = -(-entries // 4)
    figure = _new_figure(min(12.0, max(5.0, 1.2 + 0.22 * bars)), 3.4 + 0.25 * legend_rows)
    figure.set_layout_engine("constrained")
    axes = figure.subplots()
    for index, (name, heights) in enumerate(values.items()):
        offset = (index - (len(values) - 1) / 2) * width
        axes.bar(positions + offset, heights, width=width, label=name)
    if references is not None and references.ndim > 0:
        half = width * len(values) / 2
        axes.hlines(
            references,
            positions - half,
            positions + half,
            colors="black",
            linestyles="--",
            linewidth=1.2,
            label=reference_label or "_reference",  # a leading underscore keeps it out of the legend
        )
    elif references is not None:
        axes.axhline(float(references), color="black", linestyle="--", linewidth=1, label=reference_label or None)

    axes.set_xticks(
        positions,
        groups,
        rotation=20 if len(groups) > 4 else 0,
        ha="right" if len(groups) > 4 else "center",
        fontsize=8,
    )
    axes.set_ylabel(ylabel)
    axes.legend(
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18 if len(groups) > 4 else -0.1),
        ncols=min(entries, 4),
        frameon=False,
    )
    figure.suptitle(title)
    return _png_bytes(figure, dpi)


# --------------------------------------------------------------------------- embedding


def png_data_uri(png: bytes) -> str:
    """``"data:image/png;base64,…"`` for a PNG, to embed a figure in the self-contained HTML report.

    Parameters
    ----------
    png
        The bytes of a PNG, as the functions of this module return.

    Raises
    ------
    ValueError
        ``png`` does not start with the PNG signature.

    Examples
    --------
    >>> png_data_uri(PNG_SIGNATURE)[:22]
    'data:image/png;base64,'
    """
    data = bytes(png)
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("png_data_uri: the bytes are not a PNG (no PNG signature); pass a figure's PNG bytes")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
