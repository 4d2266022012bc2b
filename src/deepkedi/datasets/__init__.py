"""Images to experiment on: a real sample corpus and synthetic phantoms.

:mod:`~deepkedi.datasets.corpus` lists real medical images that pydicom,
nibabel and scikit-image ship inside their installed packages (found at run
time, never downloaded). :mod:`~deepkedi.datasets.phantoms` makes synthetic
brain, lung and liver images in CT, MR and chest radiography at clinical sizes
and bit depths, deterministically from a seed. :mod:`~deepkedi.datasets.samples` writes the
files the README and docs/ use into one folder (``kedi samples DIR``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepkedi._lazy import attach

if TYPE_CHECKING:
    from deepkedi.datasets.corpus import (
        COMPRESSIONS,
        CONTENTS,
        MODALITIES,
        ORGANS,
        SampleImage,
        sample_corpus,
        sample_names,
        sample_path,
    )
    from deepkedi.datasets.phantoms import PHANTOM_KINDS, phantom, phantom_volume
    from deepkedi.datasets.samples import SAMPLE_FILES, write_samples

__all__ = [
    "COMPRESSIONS",
    "CONTENTS",
    "MODALITIES",
    "ORGANS",
    "PHANTOM_KINDS",
    "SAMPLE_FILES",
    "SampleImage",
    "phantom",
    "phantom_volume",
    "sample_corpus",
    "sample_names",
    "sample_path",
    "write_samples",
]

__getattr__, __dir__ = attach(
    __name__,
    {
        "COMPRESSIONS": "corpus",
        "CONTENTS": "corpus",
        "MODALITIES": "corpus",
        "ORGANS": "corpus",
        "SampleImage": "corpus",
        "sample_corpus": "corpus",
        "sample_names": "corpus",
        "sample_path": "corpus",
        "PHANTOM_KINDS": "phantoms",
        "phantom": "phantoms",
        "phantom_volume": "phantoms",
        "SAMPLE_FILES": "samples",
        "write_samples": "samples",
    },
)
