"""Hybrid master keys: OS randomness mixed with ZZ-GAN key material through HKDF."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import deepkedi.keygen
from deepkedi.errors import MissingExtraError
from deepkedi.keys import generate_key
from deepkedi.keys.keyfile import MIX_INFO, mix_master_secret


def test_mix_is_hkdf_sha256_over_both_inputs() -> None:
    os_random, material = bytes(range(32)), b"\x07" * 1000
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=MIX_INFO).derive(os_random + material)
    assert mix_master_secret(os_random, material) == expected
    assert mix_master_secret(os_random, material[:-1] + b"\x06") != expected
    assert mix_master_secret(bytes(32), material) != expected
    with pytest.raises(ValueError):
        mix_master_secret(bytes(16), material)


def test_os_only_key_says_so() -> None:
    key = generate_key(gan=False)
    assert key.provenance == {"sources": ["os-csprng"]}


def test_without_torch_the_key_falls_back_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    assert not deepkedi.keygen.torch_available()
    key = generate_key()
    assert key.provenance["sources"] == ["os-csprng"]
    assert "PyTorch is not installed" in key.provenance["note"]
    with pytest.raises(MissingExtraError, match="deepkedi\\[gan\\]"):
        generate_key(gan=True)


def test_default_key_mixes_zz_gan_material() -> None:
    pytest.importorskip("torch")
    from deepkedi.keygen.generate import load_generator

    key = generate_key()
    assert key.provenance["sources"] == ["os-csprng", "zz-gan"]
    about = key.provenance["zz_gan"]
    assert about["model_sha256"] == load_generator().sha256
    assert about["key_shape"] == [256, 256] and about["bits"] == 8
    other = generate_key(initial_image=np.zeros((32, 40), np.uint16))
    assert other.provenance["zz_gan"]["key_shape"] == [32, 40]
    assert other.secret != key.secret
    assert "seed" not in str(key.provenance)  # the GAN seed is never recorded
