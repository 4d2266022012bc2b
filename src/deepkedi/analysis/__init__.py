"""Analyses around the Deep-KEDI pipeline that are not part of the cipher itself.

- :mod:`deepkedi.analysis.despeckle` -- classic speckle filters (median, Lee, Frost,
  BayesShrink wavelet, non-local means) and :func:`compare_despecklers`, the harness
  that scores them and the ripplet despeckler on speckled images.
"""

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
