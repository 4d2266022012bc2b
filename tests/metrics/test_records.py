"""The records' JSON rule, :func:`deepkedi.metrics.records.json_safe`."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

from deepkedi.metrics import records, shannon_entropy
from deepkedi.metrics.records import json_safe


def test_doctests() -> None:
    assert doctest.testmod(records).failed == 0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_floats_become_floats_and_non_finite_ones_strings(dtype: type[np.floating]) -> None:
    values = np.array([0.25, np.nan, np.inf, -np.inf], dtype=dtype)
    assert json_safe(values) == [0.25, "nan", "inf", "-inf"]
    assert type(json_safe(dtype(0.25))) is float


def test_numpy_integers_and_booleans_become_python_ones() -> None:
    out = json_safe({"n": np.uint64(2**64 - 1), "i": np.int8(-3), "ok": np.bool_(True)})
    assert out == {"n": 2**64 - 1, "i": -3, "ok": True}
    assert type(out["n"]) is int and type(out["ok"]) is bool


def test_nesting_records_and_keys() -> None:
    record = shannon_entropy(np.arange(256, dtype=np.uint8).reshape(16, 16))
    out = json_safe({1: (record, [np.float32(1.5)]), "s": "text", "none": None})
    assert out == {"1": [record.to_dict(), [1.5]], "s": "text", "none": None}
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text) == out


def test_the_result_never_holds_a_number_json_cannot_write() -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal(64)
    values[rng.integers(0, 64, 8)] = np.nan
    values[rng.integers(0, 64, 8)] = np.inf
    out = json_safe({"values": values, "mean": np.nanmean(values)})
    json.dumps(out, allow_nan=False)  # raises on NaN or ±inf
    assert all(isinstance(v, str) or math.isfinite(v) for v in out["values"])
