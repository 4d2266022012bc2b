"""Tests for deepkedi.imaging.image: MedicalImage's derived properties."""

from __future__ import annotations

import numpy as np

from deepkedi.imaging import MedicalImage


def test_channel_axis_names_the_colour_samples() -> None:
    grey = MedicalImage(np.zeros((4, 5), np.uint8))
    interleaved = MedicalImage(
        np.zeros((4, 5, 3), np.uint8), photometric="RGB", samples_per_pixel=3, channels_last=True
    )
    planar = MedicalImage(np.zeros((2, 3, 4, 5), np.uint8), photometric="RGB", samples_per_pixel=3)
    assert grey.channel_axis is None
    assert interleaved.channel_axis == -1 and interleaved.pixels.shape[interleaved.channel_axis] == 3
    assert planar.channel_axis == -3 and planar.pixels.shape[planar.channel_axis] == 3
