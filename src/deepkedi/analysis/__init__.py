"""Analyses around the Deep-KEDI pipeline that are not part of the cipher itself.

- :mod:`deepkedi.analysis.despeckle` -- classic speckle filters (median, Lee, Frost,
  BayesShrink wavelet, non-local means) and :func:`compare_despecklers`, the harness
  that scores them and the ripplet despeckler on speckled images.
- :mod:`deepkedi.analysis.schemes` -- every cipher the reproduction compares (the
  ``paper`` and ``hybrid`` suites and four classic baselines) behind one interface.
- :mod:`deepkedi.analysis.attacks` -- the attack suite: scheme × attack → resisted or
  broken, with evidence.
- :mod:`deepkedi.analysis.experiments` -- the paper's tables and figures re-run;
  :mod:`deepkedi.analysis.figures` draws them, :mod:`deepkedi.analysis.report` writes
  the report (``kedi reproduce``).

Only the despeckling names are imported here; the others are imported from their
modules (they pull in the cipher suites, and the figures need matplotlib).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepkedi._lazy import attach

if TYPE_CHECKING:
    from deepkedi.analysis.despeckle import (
        BASELINES,
        DRT_SETTINGS,
        DespeckleRow,
        compare_despecklers,
        despeckle_methods,
        estimate_speckle_variance,
        frost_filter,
        lee_filter,
        median_despeckle,
        nl_means,
        normalise_unit,
        wavelet_bayes,
    )

__all__ = [
    "BASELINES",
    "DRT_SETTINGS",
    "DespeckleRow",
    "compare_despecklers",
    "despeckle_methods",
    "estimate_speckle_variance",
    "frost_filter",
    "lee_filter",
    "median_despeckle",
    "nl_means",
    "normalise_unit",
    "wavelet_bayes",
]

__getattr__, __dir__ = attach(
    __name__,
    {
        "BASELINES": "despeckle",
        "DRT_SETTINGS": "despeckle",
        "DespeckleRow": "despeckle",
        "compare_despecklers": "despeckle",
        "despeckle_methods": "despeckle",
        "estimate_speckle_variance": "despeckle",
        "frost_filter": "despeckle",
        "lee_filter": "despeckle",
        "median_despeckle": "despeckle",
        "nl_means": "despeckle",
        "normalise_unit": "despeckle",
        "wavelet_bayes": "despeckle",
    },
)
