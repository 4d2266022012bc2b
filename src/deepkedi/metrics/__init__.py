"""Evaluation metrics for image ciphers: statistics, differential attacks, quality.

* :mod:`~deepkedi.metrics.statistics` — global and local Shannon entropy, histogram χ²,
  adjacent-pixel correlation of one image;
* :mod:`~deepkedi.metrics.differential` — NPCR and UACI with Wu, Noonan and Agaian's
  critical values, plaintext and key sensitivity;
* :mod:`~deepkedi.metrics.quality` — MSE, PSNR, SSIM;
* :mod:`deepkedi.metrics.nist` — the NIST SP 800-22 suite, a subpackage imported on
  its own (``from deepkedi.metrics import nist``).

Every function takes images positionally and options by keyword, and returns a frozen
record (:mod:`~deepkedi.metrics.records`) with a JSON-safe ``to_dict()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepkedi._lazy import attach

if TYPE_CHECKING:
    from deepkedi.metrics.differential import (
        key_sensitivity,
        npcr,
        npcr_critical,
        plaintext_sensitivity,
        uaci,
        uaci_interval,
    )
    from deepkedi.metrics.quality import compare, mse, psnr, ssim
    from deepkedi.metrics.records import (
        ChiSquareResult,
        CorrelationResult,
        EntropyResult,
        LocalEntropyResult,
        NpcrResult,
        QualityResult,
        SensitivityResult,
        UaciResult,
    )
    from deepkedi.metrics.statistics import (
        DIRECTIONS,
        adjacent_correlation,
        adjacent_correlations,
        histogram_chi_square,
        local_entropy,
        pearson,
        shannon_entropy,
        uniform_entropy_moments,
    )

__all__ = [
    "DIRECTIONS",
    "ChiSquareResult",
    "CorrelationResult",
    "EntropyResult",
    "LocalEntropyResult",
    "NpcrResult",
    "QualityResult",
    "SensitivityResult",
    "UaciResult",
    "adjacent_correlation",
    "adjacent_correlations",
    "compare",
    "histogram_chi_square",
    "key_sensitivity",
    "local_entropy",
    "mse",
    "npcr",
    "npcr_critical",
    "pearson",
    "plaintext_sensitivity",
    "psnr",
    "shannon_entropy",
    "ssim",
    "uaci",
    "uaci_interval",
    "uniform_entropy_moments",
]

__getattr__, __dir__ = attach(
    __name__,
    {
        "key_sensitivity": "differential",
        "npcr": "differential",
        "npcr_critical": "differential",
        "plaintext_sensitivity": "differential",
        "uaci": "differential",
        "uaci_interval": "differential",
        "compare": "quality",
        "mse": "quality",
        "psnr": "quality",
        "ssim": "quality",
        "ChiSquareResult": "records",
        "CorrelationResult": "records",
        "EntropyResult": "records",
        "LocalEntropyResult": "records",
        "NpcrResult": "records",
        "QualityResult": "records",
        "SensitivityResult": "records",
        "UaciResult": "records",
        "DIRECTIONS": "statistics",
        "adjacent_correlation": "statistics",
        "adjacent_correlations": "statistics",
        "histogram_chi_square": "statistics",
        "local_entropy": "statistics",
        "pearson": "statistics",
        "shannon_entropy": "statistics",
        "uniform_entropy_moments": "statistics",
    },
)
