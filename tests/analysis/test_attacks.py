"""Tests of deepkedi.analysis.attacks: fake schemes with known weaknesses, then the real ones."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct

import numpy as np
import pytest

from deepkedi.analysis.attacks import ATTACK_NAMES, AttackResult, attack_matrix, run_attack
from deepkedi.datasets import phantom
from deepkedi.errors import AuthenticationError

SHAPE = (64, 64)
_HEADER = struct.Struct(">4sHHB")  # magic, rows, cols, bytes per pixel


# --------------------------------------------------------------------------- fake schemes


class _FakeScheme:
    """Shared container code of the fakes: a small header, then the cipher pixels."""

    name = "fake"
    label = "fake"
    lossy = False
    authenticated = False
    deterministic = True
    magic = b"FAKE"
    trailer = 0  # bytes after the pixels (a tag)

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def rekeyed(self, seed: int) -> _FakeScheme:
        return type(self)(seed)

    def public_order(self, shape: tuple[int, ...]) -> np.ndarray | None:
        return None

    def _split(self, payload: bytes) -> tuple[tuple[int, int], np.dtype, bytes]:
        _, rows, cols, width = _HEADER.unpack_from(payload)
        dtype = np.dtype(np.uint8 if width == 1 else ">u2")
        return (rows, cols), dtype, payload[_HEADER.size :]

    def pixel_span(self, payload: bytes) -> tuple[int, int]:
        return _HEADER.size, len(payload) - self.trailer

    def cipher_image(self, payload: bytes) -> np.ndarray:
        shape, dtype, body = self._split(payload)
        pixels = np.frombuffer(body[: len(body) - self.trailer], dtype=dtype).reshape(shape)
        return pixels.astype(dtype.newbyteorder("="))

    def _header(self, plain: np.ndarray) -> bytes:
        return _HEADER.pack(self.magic, plain.shape[0], plain.shape[1], plain.dtype.itemsize)


class XorFixedKey(_FakeScheme):
    """C = P XOR K with K fixed by the seed: a reused pad, no authentication."""

    name = "fake-xor"

    def _key(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        high = np.iinfo(dtype).max + 1
        return np.random.default_rng(self.seed).integers(0, high, shape, dtype=np.int64).astype(dtype)

    def encrypt(self, plain: np.ndarray) -> bytes:
        cipher = plain ^ self._key(plain.shape, plain.dtype)
        return self._header(plain) + cipher.astype(cipher.dtype.newbyteorder(">")).tobytes()

    def decrypt(self, payload: bytes) -> np.ndarray:
        cipher = self.cipher_image(payload)
        return cipher ^ self._key(cipher.shape, cipher.dtype)


class IdealScheme(_FakeScheme):
    """A fresh nonce per encryption, a SHAKE-256 pad from key and nonce, HMAC-SHA256 over it all."""

    name = "fake-ideal"
    authenticated = True
    deterministic = False
    magic = b"IDEL"
    trailer = 32

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self._key = hashlib.sha256(b"key %d" % seed).digest()
        self._nonces = np.random.default_rng(seed)

    def _pad(self, nonce: bytes, size: int) -> bytes:
        return hashlib.shake_256(self._key + nonce).digest(size)

    def pixel_span(self, payload: bytes) -> tuple[int, int]:
        return _HEADER.size + 16, len(payload) - self.trailer

    def _split(self, payload: bytes) -> tuple[tuple[int, int], np.dtype, bytes]:
        shape, dtype, body = super()._split(payload)
        return shape, dtype, body[16:]

    def encrypt(self, plain: np.ndarray) -> bytes:
        nonce = self._nonces.bytes(16)
        data = plain.astype(plain.dtype.newbyteorder(">")).tobytes()
        body = bytes(a ^ b for a, b in zip(data, self._pad(nonce, len(data)), strict=True))
        message = self._header(plain) + nonce + body
        return message + hmac.new(self._key, message, hashlib.sha256).digest()

    def decrypt(self, payload: bytes) -> np.ndarray:
        message, tag = payload[:-32], payload[-32:]
        if not hmac.compare_digest(tag, hmac.new(self._key, message, hashlib.sha256).digest()):
            raise AuthenticationError()
        shape, dtype, body = self._split(payload)
        nonce = payload[_HEADER.size : _HEADER.size + 16]
        data = body[: len(body) - self.trailer]
        plain = bytes(a ^ b for a, b in zip(data, self._pad(nonce, len(data)), strict=True))
        return np.frombuffer(plain, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


class ZigzagXor(XorFixedKey):
    """XOR after a public scan order (here: the reversed raster), as the paper's scheme."""

    name = "fake-zigzag-xor"

    def public_order(self, shape: tuple[int, ...]) -> np.ndarray | None:
        return np.arange(int(np.prod(shape)))[::-1].copy()

    def encrypt(self, plain: np.ndarray) -> bytes:
        order = self.public_order(plain.shape)
        scanned = plain.ravel()[order].reshape(plain.shape)
        return super().encrypt(scanned)

    def decrypt(self, payload: bytes) -> np.ndarray:
        scanned = super().decrypt(payload)
        plain = np.empty(scanned.size, scanned.dtype)
        plain[self.public_order(scanned.shape)] = scanned.ravel()
        return plain.reshape(scanned.shape)


class Crashing(XorFixedKey):
    """A scheme with a bug: decryption raises something that is not a detection."""

    name = "fake-crashing"

    def decrypt(self, payload: bytes) -> np.ndarray:
        raise RuntimeError("bug")


# --------------------------------------------------------------------------- images


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    shifted = pixels.astype(np.int64) - int(pixels.min())
    return (shifted * 255 // max(int(shifted.max()), 1)).astype(np.uint8)


def _to_uint16(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.int64) - int(pixels.min())).astype(np.uint16)


@pytest.fixture(scope="module")
def phantoms16() -> tuple[np.ndarray, np.ndarray]:
    brain = phantom("brain", "MR", seed=0, shape=SHAPE).pixels
    lung = phantom("lung", "CT", seed=0, shape=SHAPE).pixels
    return _to_uint16(brain), _to_uint16(lung)


@pytest.fixture(scope="module")
def phantoms8(phantoms16: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return _to_uint8(phantoms16[0]), _to_uint8(phantoms16[1])


@pytest.fixture(params=["uint8", "uint16"])
def images(request: pytest.FixtureRequest, phantoms8, phantoms16) -> tuple[np.ndarray, np.ndarray]:
    return phantoms8 if request.param == "uint8" else phantoms16


def _verdicts(results: list[AttackResult]) -> dict[str, str]:
    return {r.attack: r.verdict for r in results}


# --------------------------------------------------------------------------- fakes


def test_xor_fixed_key_is_broken_where_a_reused_pad_is(images) -> None:
    first, second = images
    results = attack_matrix([XorFixedKey(seed=3)], first, second)
    verdicts = _verdicts(results)
    assert verdicts["known-plaintext"] == "broken"
    assert verdicts["key-reuse"] == "broken"
    assert verdicts["tamper"] == "broken"
    assert verdicts["differential"] == "broken"  # one pixel in, one pixel out
    assert verdicts["wrong-key"] == "resisted"
    by_attack = {r.attack: r for r in results}
    known = by_attack["known-plaintext"]
    assert known.evidence["exact_share"] == 1.0 and known.evidence["psnr_db"] == "inf"
    np.testing.assert_array_equal(known.images["recovered"], second)
    reuse = by_attack["key-reuse"]
    assert reuse.evidence["equal_share"] == 1.0
    assert reuse.evidence["correlation"] == pytest.approx(1.0)
    np.testing.assert_array_equal(reuse.images["c1 xor c2"], first ^ second)
    differential = by_attack["differential"].evidence
    assert differential["words"]["npcr"] == pytest.approx(100 / first.size)
    assert differential["npcr"] == pytest.approx(100 / first.nbytes)  # one byte of one word changes
    tamper = by_attack["tamper"].evidence
    assert tamper["detected"] == 0
    assert [t["changed_pixels"] for t in tamper["trials"]] == [1, 8]
    assert all(t["max_change"] >= 1 for t in tamper["trials"])


def test_ideal_scheme_resists_every_attack(images) -> None:
    first, second = images
    results = attack_matrix([IdealScheme(seed=1)], first, second)
    assert [r.attack for r in results] == list(ATTACK_NAMES)
    assert _verdicts(results) == dict.fromkeys(ATTACK_NAMES, "resisted"), [r.summary for r in results]
    by_attack = {r.attack: r for r in results}
    assert "generic keystream-recovery attack" in by_attack["known-plaintext"].summary
    assert by_attack["differential"].evidence["deterministic"] is False
    assert "randomised" in by_attack["differential"].summary
    assert by_attack["tamper"].evidence["detected"] == 2
    assert {a["outcome"] for a in by_attack["wrong-key"].evidence["attempts"]} == {"refused"}


def test_public_order_is_undone(phantoms8) -> None:
    first, second = phantoms8
    plain = run_attack(XorFixedKey(seed=2), "known-plaintext", first, second)
    scanned = run_attack(ZigzagXor(seed=2), "known-plaintext", first, second)
    assert scanned.evidence["public_order"] is True and plain.evidence["public_order"] is False
    np.testing.assert_array_equal(scanned.images["recovered"], second)
    reuse = run_attack(ZigzagXor(seed=2), "key-reuse", first, second)
    assert reuse.verdict == "broken" and reuse.evidence["equal_share"] == 1.0


def test_evidence_is_json_safe_and_summaries_are_one_line(phantoms8) -> None:
    first, second = phantoms8
    for result in attack_matrix([XorFixedKey(), IdealScheme()], first, second):
        json.dumps(result.evidence, allow_nan=False)
        assert result.summary and "\n" not in result.summary
        assert result.verdict in ("resisted", "broken")
        assert "summary" not in result.evidence


def test_on_result_sees_every_result(phantoms8) -> None:
    seen: list[AttackResult] = []
    results = attack_matrix([XorFixedKey(), IdealScheme()], *phantoms8, on_result=seen.append)
    assert seen == results and len(results) == 2 * len(ATTACK_NAMES)


def test_tamper_flips_inside_the_pixel_span(phantoms8) -> None:
    result = run_attack(IdealScheme(), "tamper", *phantoms8, seed=5)
    start, stop = result.evidence["pixel_span"]
    positions = [p for t in result.evidence["trials"] for p in t["positions"]]
    assert len(positions) == 9
    assert all(start <= byte < stop and 0 <= bit < 8 for byte, bit in positions)


def test_unexpected_errors_propagate(phantoms8) -> None:
    with pytest.raises(RuntimeError, match="bug"):
        run_attack(Crashing(), "tamper", *phantoms8)


@pytest.mark.parametrize(
    ("attack", "first", "second", "error"),
    [
        ("no-such-attack", np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint8), ValueError),
        ("key-reuse", np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), ValueError),
        ("key-reuse", np.zeros((8, 8), np.uint8), np.ones((8, 9), np.uint8), ValueError),
        ("key-reuse", np.zeros((8, 8), np.int16), np.ones((8, 8), np.int16), TypeError),
        ("key-reuse", np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint16), ValueError),
    ],
)
def test_bad_arguments_are_refused(attack, first, second, error) -> None:
    with pytest.raises(error):
        run_attack(XorFixedKey(), attack, first, second)


# --------------------------------------------------------------------------- real schemes


@pytest.fixture(scope="module")
def schemes_module():
    from deepkedi.analysis import schemes

    return schemes


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_real_hybrid_resists_every_attack(schemes_module, dtype, phantoms8, phantoms16) -> None:
    first, second = phantoms8 if dtype == "uint8" else phantoms16
    bits = 8 if dtype == "uint8" else 16
    scheme = schemes_module.make_scheme("hybrid", seed=0, shape=SHAPE, bits=bits)
    results = {r.attack: r for r in attack_matrix([scheme], first, second)}
    for attack in ("known-plaintext", "key-reuse", "tamper", "wrong-key"):
        assert results[attack].verdict == "resisted", results[attack].summary
    assert results["tamper"].evidence["detected"] == results["tamper"].evidence["total"] == 2
    # NPCR, UACI and χ² are tests at α = 0.05: an ideal cipher fails each now and then.
    assert results["differential"].evidence["npcr"] > 99.0
    assert results["statistical"].evidence["chi_square"] < 2 * results["statistical"].evidence["chi_square_critical"]


def test_real_xor_fixed_key_is_broken(schemes_module, phantoms8) -> None:
    first, second = phantoms8
    scheme = schemes_module.make_scheme("xor-fixed-key", seed=0, shape=SHAPE, bits=8)
    for attack in ("known-plaintext", "key-reuse"):
        result = run_attack(scheme, attack, first, second)
        assert result.verdict == "broken", result.summary


def test_psnr_uses_the_stored_bit_depth(phantoms16) -> None:
    first, second = phantoms16
    assert max(int(first.max()), int(second.max())) < 4096
    result = run_attack(XorFixedKey(), "wrong-key", first, second)
    assert result.evidence["plain_bits"] == 12
    wide = run_attack(XorFixedKey(), "wrong-key", first, second, plain_bits=16)
    assert wide.evidence["plain_bits"] == 16
    with pytest.raises(ValueError, match="plain_bits"):
        run_attack(XorFixedKey(), "wrong-key", first, second, plain_bits=8)


class PermutedXor(XorFixedKey):
    """A secret permutation, then XOR with a fixed key: no public order to undo."""

    name = "fake-permuted-xor"

    def _permutation(self, size: int) -> np.ndarray:
        return np.random.default_rng(self.seed + 1000).permutation(size)

    def encrypt(self, plain: np.ndarray) -> bytes:
        return super().encrypt(plain.ravel()[self._permutation(plain.size)].reshape(plain.shape))


def test_twelve_bit_noise_is_not_a_recovery(phantoms16) -> None:
    # The generic recovery against a secret permutation gives 12-bit noise: over 30 dB on a
    # 16-bit scale, but nothing of the image on its own 12-bit scale.
    first, second = phantoms16
    result = run_attack(PermutedXor(), "known-plaintext", first, second)
    assert result.verdict == "resisted", result.summary
    assert abs(result.evidence["correlation"]) < 0.5
    wide = run_attack(PermutedXor(), "known-plaintext", first, second, plain_bits=16)
    assert wide.evidence["psnr_db"] > result.evidence["psnr_db"] + 20
