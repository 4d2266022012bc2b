"""The attack suite: each cipher scheme against each attack, with a verdict and its evidence.

Statistical scores (entropy, NPCR, UACI …) are not evidence of security (Preishuber et
al. 2018, [3]_): ciphers with known breaks pass them. This module is where the security
claims of the schemes of :mod:`deepkedi.analysis.schemes` are tested instead. Each
attack plays one threat model against one scheme instance and returns an
:class:`AttackResult`: ``"broken"`` or ``"resisted"``, a one-line summary with the
numbers, JSON-safe evidence and images for figures.

===============  ==================================================  ==========================================
attack           threat model                                        broken when
===============  ==================================================  ==========================================
known-plaintext  one (plain, payload) pair — the given image or a      second image read: PSNR ≥ 30 dB, ≥ 50 %
                 blank frame — and a second payload under one key    of its pixels exact, or |r| ≥ 0.8
key-reuse        two payloads under one key, no plaintext            |r(c1 ⊕ c2, p1 ⊕ p2)| ≥ 0.5 or ≥ 50 % equal
differential     chosen plaintext: two images one grey level apart   NPCR or UACI of the cipher bytes fails
                                                                     Wu's test [2]_ at α = 0.001
tamper           active: flip 1, then 8, bits of cipher pixels       a modified payload decrypts silently
wrong-key        holder of another key (B, C, D; paper's Fig. 10)    a restored image has PSNR ≥ 15 dB
statistical      passive observer of one cipher image                χ² of the bytes fails (α = 0.001), some
                                                                     |r| ≥ 0.05, or entropy off
                                                                     by more than 0.01·bits
===============  ==================================================  ==========================================

"resisted" means *this* attack failed, never that the scheme is secure. PSNR is taken on
the plain images' stored range (``plain_bits``: 12 for CT and MR in ``uint16``), NPCR,
UACI and the statistics on the cipher images' dtype range.

References
----------
.. [1] K. Selvakumar and S. Lokesh, "Deep-KEDI" (ZZ-GAN key generation for medical
   image encryption), Technology and Health Care 32(5) (2024) 3231–3251.
   doi:10.3233/THC-231927
.. [2] Y. Wu, J. P. Noonan, S. Agaian, "NPCR and UACI randomness tests for image
   encryption", Cyber Journals JSAT, April 2011, 31–38.
.. [3] M. Preishuber, T. Hütter, S. Katzenbeisser, A. Uhl, "Depreciating motivation and
   empirical security analysis of chaos-based image and video encryption", IEEE
   Transactions on Information Forensics and Security 13(9) (2018) 2137–2150.
   doi:10.1109/TIFS.2018.2812080
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from deepkedi.errors import AuthenticationError, FormatError
from deepkedi.metrics import (
    adjacent_correlations,
    histogram_chi_square,
    local_entropy,
    npcr,
    pearson,
    plaintext_sensitivity,
    psnr,
    shannon_entropy,
    uaci,
)
from deepkedi.metrics.records import json_safe

if TYPE_CHECKING:
    from deepkedi.analysis.schemes import Scheme

__all__ = [
    "ATTACK_NAMES",
    "AttackResult",
    "Verdict",
    "attack_matrix",
    "run_attack",
]

#: The attacks :func:`run_attack` knows, in the order :func:`attack_matrix` runs them.
ATTACK_NAMES: tuple[str, ...] = (
    "known-plaintext",
    "key-reuse",
    "differential",
    "tamper",
    "wrong-key",
    "statistical",
)

Verdict = Literal["resisted", "broken"]

#: Known-plaintext: the second image counts as read at this PSNR (dB) …
RECOVERY_PSNR_DB = 30.0
#: … or when this share of its pixels comes back exactly.
RECOVERY_EXACT_SHARE = 0.5
#: Known plaintext: a recovered image this correlated with the secret one is read (speckle or not).
READABLE_CORRELATION = 0.8
#: Key reuse: |Pearson r| between c1 ⊕ c2 and p1 ⊕ p2 (or the share equal) that counts as a leak.
LEAK_THRESHOLD = 0.5
#: Wrong key: a restored image below this PSNR (dB) against the plain image shows nothing.
WRONG_KEY_GARBAGE_DB = 15.0
#: Wrong key: at or above this PSNR (dB) the image is readable without the key.
WRONG_KEY_READABLE_DB = 30.0
#: Statistical: largest |adjacent correlation| of a cipher image.
CORRELATION_LIMIT = 0.05
#: Statistical: largest distance of the global entropy from its random expectation, per bit of depth.
ENTROPY_TOLERANCE_PER_BIT = 0.01
#: Significance level of every test here (NPCR, UACI, χ², local entropy).
ALPHA = 0.05
#: Differential and statistical: significance of the byte-level tests that decide the verdict.
DIFFERENTIAL_ALPHA = 0.001
#: Wrong key: the other keys are the scheme's seed plus these (keys B, C, D).
WRONG_KEY_OFFSETS: tuple[int, ...] = (1, 2, 3)
#: Errors by which a scheme says it detected a modified payload or a wrong key.
DETECTIONS: tuple[type[Exception], ...] = (AuthenticationError, FormatError)


@dataclass(frozen=True)
class AttackResult:
    """One attack against one scheme.

    Attributes
    ----------
    scheme, attack
        The scheme's name and one of :data:`ATTACK_NAMES`.
    verdict
        ``"broken"`` when the attack reached its goal, else ``"resisted"`` (this attack
        failed; not a proof of security).
    summary
        One line for a security officer, with the numbers.
    evidence
        JSON-safe measurements behind the verdict, all computed (infinite PSNR is the
        string ``"inf"``).
    images
        Arrays for figures (not serialised), e.g. ``{"c1 xor c2": ..., "recovered": ...}``.
    """

    scheme: str
    attack: str
    verdict: Verdict
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def broken(self) -> bool:
        """True when the verdict is ``"broken"``."""
        return self.verdict == "broken"


# --------------------------------------------------------------------------- helpers


def _check_images(
    first: np.ndarray, second: np.ndarray, plain_bits: int | None
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Both plain images as arrays after checking them, with the dtype's bit depth and the stored one."""
    a, b = np.asarray(first), np.asarray(second)
    for name, image in (("first", a), ("second", b)):
        if image.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
            raise TypeError(
                f"the {name} image must be uint8 or uint16, not {image.dtype}; shift signed CT "
                "to non-negative values first, e.g. (ct - ct.min()).astype(np.uint16)"
            )
        if image.ndim != 2 or image.size == 0:
            raise ValueError(f"the {name} image must be a non-empty 2-D array, got shape {image.shape}")
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(
            f"the two images must have the same shape and dtype; got {a.shape} {a.dtype} and {b.shape} {b.dtype}"
        )
    if np.array_equal(a, b):
        raise ValueError("the two images are identical; the attacks need two different images")
    bits = 8 * a.dtype.itemsize
    top = max(int(a.max()), int(b.max()))
    if plain_bits is None:
        plain_bits = min(bits, max(8, top.bit_length()))
    elif isinstance(plain_bits, bool) or not isinstance(plain_bits, (int, np.integer)):
        raise TypeError(f"plain_bits must be an int, not {type(plain_bits).__name__}")
    elif not 1 <= plain_bits <= bits or top >= 1 << int(plain_bits):
        raise ValueError(f"plain_bits={plain_bits} does not fit: the images are {a.dtype} with values up to {top}")
    return a, b, bits, int(plain_bits)


def _cipher_pixels(scheme: Scheme, payload: bytes, like: np.ndarray) -> np.ndarray:
    """The cipher image of ``payload``, checked to have the shape of the plain image ``like``."""
    cipher = np.asarray(scheme.cipher_image(payload))
    if cipher.shape != like.shape:
        raise ValueError(f"scheme {scheme.name!r} gave a {cipher.shape} cipher image for a {like.shape} plain image")
    return cipher.astype(like.dtype, copy=False)


def _order(scheme: Scheme, shape: tuple[int, int]) -> np.ndarray | None:
    """The scheme's public scan order, checked to be a permutation of the pixels."""
    order = scheme.public_order(shape)
    if order is None:
        return None
    order = np.asarray(order).ravel()
    size = math.prod(shape)
    if order.size != size or not np.array_equal(np.sort(order), np.arange(size)):
        raise ValueError(f"scheme {scheme.name!r} gave a public order that is not a permutation of {size} pixels")
    return order


def _scan(image: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """P: read the flat image in ``order`` and lay the sequence out row-major again."""
    if order is None:
        return image
    return image.ravel()[order].reshape(image.shape)


def _unscan(image: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """P⁻¹: put each element of the row-major sequence back at the pixel ``order`` read it from."""
    if order is None:
        return image
    flat = np.empty(image.size, dtype=image.dtype)
    flat[order] = image.ravel()
    return flat.reshape(image.shape)


def _psnr(reference: np.ndarray, image: np.ndarray, plain_bits: int) -> float:
    """PSNR on the plain images' stored range; values above it are shown as white, as a viewer would."""
    peak = (1 << plain_bits) - 1
    return psnr(reference, np.clip(image, 0, peak), data_range=peak)


def _db(value: float) -> str:
    return "∞ dB" if math.isinf(value) else f"{value:.1f} dB"


def _result(
    scheme: Scheme,
    attack: str,
    broken: bool,
    summary: str,
    evidence: dict[str, Any],
    images: dict[str, np.ndarray],
) -> AttackResult:
    return AttackResult(
        scheme=scheme.name,
        attack=attack,
        verdict="broken" if broken else "resisted",
        summary=summary,
        evidence=json_safe(evidence),
        images=images,
    )


# --------------------------------------------------------------------------- attacks


def _known_plaintext(
    scheme: Scheme, first: np.ndarray, second: np.ndarray, bits: int, plain_bits: int, seed: int
) -> AttackResult:
    """Known plaintext: recover the keystream from one pair, read a second image with it.

    Threat model: the attacker holds one plain image ``first`` with its payload (a
    sample image, a published scan, a phantom sent through the system) and the payload
    of another image ``second`` under the same scheme instance (same key). Generic
    keystream recovery, the textbook attack on a reused pad:
    ``k = cipher(c1) ⊕ P(first)`` with P the scheme's public scan order (identity when
    it has none), then ``recovered = P⁻¹(cipher(c2) ⊕ k)``.

    The attack is tried with two known images, the given one and a blank (all-zero) frame,
    and the better recovery counts. The recovered image is *read* when its PSNR reaches
    30 dB, half its pixels are exact, or it correlates with the secret image at |r| ≥ 0.8
    (speckled, but as legible as the key holder's own decryption before despeckling).
    It breaks every cipher whose cipher image is a fixed function of the key XORed onto
    the (publicly scanned) plain image. "resisted" only means this generic attack
    failed: permutation–diffusion chaos ciphers that survive it fall to dedicated
    chosen-plaintext attacks (Li, Li, Chen, Bourbakis, "A general quantitative
    cryptanalysis of permutation-only multimedia ciphers against plaintext attacks",
    Signal Processing: Image Communication 23 (2008) 212–223, doi:10.1016/j.image.2008.01.003;
    Solak, Çokal, Yildiz, Biyikoğlu, "Cryptanalysis of Fridrich's chaotic image
    encryption", Int. J. Bifurcation and Chaos 20(5) (2010) 1405–1413,
    doi:10.1142/S0218127410026563).
    """
    order = _order(scheme, first.shape)
    c2 = scheme.encrypt(second)
    trials = {}
    # Two known images: the given one, and a blank frame (QA and calibration series hold them). A blank
    # frame matters for speckled XOR: speckle keeps zeros, so it yields the pad exactly.
    for known_name, known in (("given image", first), ("blank frame", np.zeros_like(first))):
        c1 = scheme.encrypt(known)
        keystream = _cipher_pixels(scheme, c1, known) ^ _scan(known, order)
        recovered = _unscan(_cipher_pixels(scheme, c2, second) ^ keystream, order)
        r = pearson(recovered, second)
        trials[known_name] = {
            "psnr_db": _psnr(second, recovered, plain_bits),
            "exact_share": float(np.mean(recovered == second)),
            "correlation": 0.0 if math.isnan(r) else r,
            "keystream": keystream,
            "recovered": recovered,
        }

    def reads(t: dict[str, Any]) -> bool:
        return (
            t["psnr_db"] >= RECOVERY_PSNR_DB
            or t["exact_share"] >= RECOVERY_EXACT_SHARE
            or abs(t["correlation"]) >= READABLE_CORRELATION
        )

    best_name = max(trials, key=lambda k: (reads(trials[k]), abs(trials[k]["correlation"])))
    best = trials[best_name]
    broken = reads(best)
    numbers = (
        f"PSNR {_db(best['psnr_db'])}, {100 * best['exact_share']:.1f} % of pixels exact, "
        f"r = {best['correlation']:.2f} with the true image"
    )
    if broken:
        summary = f"second image read from one known pair ({best_name}): {numbers}"
    else:
        summary = (
            f"resisted by the generic keystream-recovery attack (not a proof of security): "
            f"best recovery ({best_name}) {numbers}"
        )
    evidence = {
        "known_image": best_name,
        "psnr_db": best["psnr_db"],
        "exact_share": best["exact_share"],
        "correlation": best["correlation"],
        "trials": {k: {m: v[m] for m in ("psnr_db", "exact_share", "correlation")} for k, v in trials.items()},
        "psnr_threshold_db": RECOVERY_PSNR_DB,
        "exact_threshold": RECOVERY_EXACT_SHARE,
        "readable_correlation": READABLE_CORRELATION,
        "public_order": order is not None,
        "plain_bits": plain_bits,
    }
    return _result(
        scheme,
        "known-plaintext",
        broken,
        summary,
        evidence,
        {"recovered keystream": best["keystream"], "recovered": best["recovered"]},
    )


def _key_reuse(
    scheme: Scheme, first: np.ndarray, second: np.ndarray, bits: int, plain_bits: int, seed: int
) -> AttackResult:
    """Key reuse: two cipher images under one key, no plaintext.

    Threat model: a passive attacker sees two payloads made with the same key. If the
    scheme is a reused pad, ``c1 ⊕ c2 = P(p1) ⊕ P(p2)``: the key cancels and both
    images show through (the "two-time pad"). Measured: |Pearson r| between
    ``d = cipher(c1) ⊕ cipher(c2)`` and ``P(p1) ⊕ P(p2)`` as integers, and the share of
    pixels where they are equal.
    """
    order = _order(scheme, first.shape)
    c1, c2 = scheme.encrypt(first), scheme.encrypt(second)
    leaked = _cipher_pixels(scheme, c1, first) ^ _cipher_pixels(scheme, c2, second)
    expected = _scan(first, order) ^ _scan(second, order)
    r = pearson(leaked, expected)
    correlation = 0.0 if math.isnan(r) else abs(r)
    equal = float(np.mean(leaked == expected))
    broken = correlation >= LEAK_THRESHOLD or equal >= LEAK_THRESHOLD
    numbers = f"|r(c1⊕c2, p1⊕p2)| = {correlation:.3f}, {100 * equal:.1f} % of pixels equal"
    summary = (
        f"the key cancels between two cipher images: {numbers}"
        if broken
        else f"no leak between two cipher images under one key: {numbers}"
    )
    evidence = {
        "correlation": correlation,
        "correlation_defined": not math.isnan(r),
        "equal_share": equal,
        "threshold": LEAK_THRESHOLD,
        "public_order": order is not None,
        "bits": bits,
    }
    return _result(scheme, "key-reuse", broken, summary, evidence, {"c1 xor c2": leaked, "p1 xor p2": expected})


def _differential(
    scheme: Scheme, first: np.ndarray, second: np.ndarray, bits: int, plain_bits: int, seed: int
) -> AttackResult:
    """Differential (chosen plaintext): NPCR and UACI of two images one grey level apart.

    Threat model: the attacker has two chosen images encrypted under one key, ``first``
    and ``first`` with its centre pixel raised by one grey level
    (:func:`deepkedi.metrics.plaintext_sensitivity`), and looks at how much of the
    cipher image changes. NPCR and UACI are tested against Wu, Noonan and Agaian's
    critical values [2]_ at α = 0.05. "resisted" when both pass. For a
    randomised scheme (fresh nonce per encryption) any two cipher images differ
    everywhere, so passing says nothing about diffusion; the evidence records whether
    the scheme is deterministic.
    """
    position = (first.shape[0] // 2, first.shape[1] // 2)
    ciphers: list[np.ndarray] = []

    def encrypt(plain: np.ndarray) -> np.ndarray:
        cipher = _cipher_pixels(scheme, scheme.encrypt(plain), first)
        ciphers.append(cipher)
        return cipher

    sensitivity = plaintext_sensitivity(encrypt, first, position=position, bits=bits, alpha=ALPHA)
    words_n, words_u = sensitivity.npcr, sensitivity.uaci
    # The verdict is taken on the cipher *bytes* at α = 0.001. Two α = 0.05 tests in one run fail a
    # perfect cipher about one time in ten, more for 16-bit words on small images (only N / 65536 pixels
    # are expected equal, where the normal approximation behind Wu's values fails); a broken diffusion
    # fails by orders of magnitude at any α.
    first_bytes = np.ascontiguousarray(ciphers[0]).view(np.uint8)
    second_bytes = np.ascontiguousarray(ciphers[1]).view(np.uint8)
    n = npcr(first_bytes, second_bytes, bits=8, alpha=DIFFERENTIAL_ALPHA)
    u = uaci(first_bytes, second_bytes, bits=8, alpha=DIFFERENTIAL_ALPHA)
    broken = not (n.passed and u.passed)
    numbers = (
        f"bytes: NPCR {n.value:.4f} % (needs ≥ {n.critical:.4f} %), "
        f"UACI {u.value:.4f} % (needs {u.lower:.4f}–{u.upper:.4f} %) at α = {DIFFERENTIAL_ALPHA}"
    )
    if broken:
        summary = f"one changed pixel does not spread: {numbers}"
    elif scheme.deterministic:
        summary = f"one changed pixel changes the whole cipher image: {numbers}"
    else:
        summary = f"randomised scheme (fresh nonce per encryption), cipher images unrelated: {numbers}"
    evidence = {
        "npcr": n.value,
        "npcr_critical": n.critical,
        "npcr_passed": n.passed,
        "uaci": u.value,
        "uaci_lower": u.lower,
        "uaci_upper": u.upper,
        "uaci_passed": u.passed,
        "alpha": DIFFERENTIAL_ALPHA,
        "unit": "cipher bytes",
        "words": {
            "bits": bits,
            "alpha": ALPHA,
            "npcr": words_n.value,
            "npcr_passed": words_n.passed,
            "uaci": words_u.value,
            "uaci_passed": words_u.passed,
        },
        "position": list(position),
        "deterministic": bool(scheme.deterministic),
        "bits": bits,
    }
    images = {
        "cipher": ciphers[0],
        "cipher, one pixel changed": ciphers[1],
        "changed pixels": (ciphers[0] != ciphers[1]).astype(np.uint8),
    }
    return _result(scheme, "differential", broken, summary, evidence, images)


def _flip_positions(start: int, stop: int, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``count`` (byte, bit) positions in ``[start, stop)``, one per equal share of the span."""
    span = stop - start
    if count == 1:
        offsets = [int(rng.integers(0, span))]
    else:
        share = span / count
        offsets = sorted({int(i * share + rng.random() * share) for i in range(count)})
    return [(start + min(offset, span - 1), int(rng.integers(0, 8))) for offset in offsets]


def _tamper(
    scheme: Scheme, first: np.ndarray, second: np.ndarray, bits: int, plain_bits: int, seed: int
) -> AttackResult:
    """Tamper: flip cipher-pixel bits and see whether decryption notices.

    Threat model: an active attacker on the storage or the network modifies a payload
    (the paper's scheme has no integrity check, [1]_). One bit, then 8 bits spread
    evenly over the payload's cipher-pixel bytes (``pixel_span``, positions drawn with
    ``seed``) are flipped and the payload decrypted. Detection means the scheme raises
    :class:`~deepkedi.errors.AuthenticationError` or :class:`~deepkedi.errors.FormatError`;
    a silent decryption, even one that restores the same pixels, is a break of
    integrity. The changed pixels are counted against the untampered decryption (the
    paper's scheme is lossy, so not against ``first``).
    """
    payload = scheme.encrypt(first)
    start, stop = (int(v) for v in scheme.pixel_span(payload))
    if not 0 <= start < stop <= len(payload):
        raise ValueError(f"scheme {scheme.name!r} gave pixel span [{start}, {stop}) for a {len(payload)}-byte payload")
    reference = np.asarray(scheme.decrypt(payload))
    rng = np.random.default_rng(seed)
    trials: list[dict[str, Any]] = []
    images: dict[str, np.ndarray] = {}
    for count in (1, 8):
        flips = _flip_positions(start, stop, count, rng)
        tampered = bytearray(payload)
        for byte, bit in flips:
            tampered[byte] ^= 1 << bit
        trial: dict[str, Any] = {"bits_flipped": len(flips), "positions": [[b, k] for b, k in flips]}
        try:
            restored = np.asarray(scheme.decrypt(bytes(tampered)))
        except DETECTIONS as error:
            trial.update(detected=True, error=type(error).__name__)
        else:
            trial["detected"] = False
            if restored.shape == reference.shape:
                difference = np.abs(restored.astype(np.int64) - reference.astype(np.int64))
                trial.update(changed_pixels=int(np.count_nonzero(difference)), max_change=int(difference.max()))
            else:
                trial.update(changed_pixels=int(reference.size), max_change=None, restored_shape=list(restored.shape))
            images[f"restored, {len(flips)} bit(s) flipped"] = restored
        trials.append(trial)
    missed = [t for t in trials if not t["detected"]]
    broken = bool(missed)
    if broken:
        details = "; ".join(
            f"{t['bits_flipped']} bit(s): {t['changed_pixels']} pixel(s) changed, max change {t['max_change']}"
            for t in missed
        )
        summary = f"modified payload decrypted without complaint ({len(missed)} of {len(trials)} trials): {details}"
    else:
        errors = sorted({t["error"] for t in trials})
        summary = f"every modification detected ({len(trials)} of {len(trials)} trials, {', '.join(errors)})"
    evidence = {
        "trials": trials,
        "detected": len(trials) - len(missed),
        "total": len(trials),
        "pixel_span": [start, stop],
        "payload_bytes": len(payload),
    }
    return _result(scheme, "tamper", broken, summary, evidence, images)


def _wrong_key(
    scheme: Scheme, first: np.ndarray, second: np.ndarray, bits: int, plain_bits: int, seed: int
) -> AttackResult:
    """Wrong key: decrypt with keys B, C, D (the paper's Fig. 10).

    Threat model: someone holding a different key of the same scheme (another site,
    a revoked key) tries to open the payload of ``first``. The other keys come from
    :meth:`Scheme.rekeyed` with the scheme's seed plus 1, 2, 3. Each attempt is
    refused (:class:`~deepkedi.errors.AuthenticationError` or
    :class:`~deepkedi.errors.FormatError`), gives garbage (PSNR against ``first`` below
    15 dB), is readable (≥ 30 dB) or is in between (a partial leak). "resisted" only
    when every attempt is refused or garbage.
    """
    payload = scheme.encrypt(first)
    attempts: list[dict[str, Any]] = []
    images: dict[str, np.ndarray] = {}
    for letter, offset in zip("BCD", WRONG_KEY_OFFSETS, strict=True):
        other_seed = scheme.seed + offset
        other = scheme.rekeyed(other_seed)
        attempt: dict[str, Any] = {"key": letter, "seed": other_seed}
        try:
            restored = np.asarray(other.decrypt(payload))
        except DETECTIONS as error:
            attempt.update(outcome="refused", error=type(error).__name__, psnr_db=None)
        else:
            quality = _psnr(first, restored, plain_bits)
            if quality < WRONG_KEY_GARBAGE_DB:
                outcome = "garbage"
            elif quality >= WRONG_KEY_READABLE_DB:
                outcome = "readable"
            else:
                outcome = "partial"
            attempt.update(outcome=outcome, psnr_db=quality)
            images[f"key {letter}"] = restored
        attempts.append(attempt)
    outcomes = [a["outcome"] for a in attempts]
    broken = any(o in ("readable", "partial") for o in outcomes)

    def describe(a: dict[str, Any]) -> str:
        if a["outcome"] == "refused":
            return f"key {a['key']} refused"
        return f"key {a['key']} {a['outcome']} ({_db(a['psnr_db'])})"

    listing = ", ".join(describe(a) for a in attempts)
    if broken:
        note = "" if "readable" in outcomes else " (no key readable, but above the 15 dB garbage level: a partial leak)"
        summary = f"another key shows the image: {listing}{note}"
    else:
        summary = f"no other key shows the image: {listing}"
    evidence = {
        "attempts": attempts,
        "garbage_below_db": WRONG_KEY_GARBAGE_DB,
        "readable_from_db": WRONG_KEY_READABLE_DB,
        "plain_bits": plain_bits,
    }
    return _result(scheme, "wrong-key", broken, summary, evidence, images)


def _statistical(
    scheme: Scheme, first: np.ndarray, second: np.ndarray, bits: int, plain_bits: int, seed: int
) -> AttackResult:
    """Statistical: does one cipher image look like uniform noise?

    Threat model: a passive observer of one cipher image looks for structure: the
    global entropy against its finite-sample expectation for random pixels, Wu et
    al.'s local entropy, the χ² test of the histogram and the adjacent-pixel
    correlations (:mod:`deepkedi.metrics`). "resisted" when χ² of the cipher bytes passes at α = 0.001,
    every |correlation| < 0.05 and the global entropy is within 0.01·bits of the
    random expectation; local entropy is reported, not judged (small images hold few
    44×44 blocks).

    These scores are not evidence of security: insecure chaos ciphers pass all of
    them (Preishuber et al., IEEE TIFS 2018, [3]_). A "broken" here is a real leak;
    a "resisted" means little.
    """
    cipher = _cipher_pixels(scheme, scheme.encrypt(first), first)
    entropy = shannon_entropy(cipher, bits=bits)
    # χ² on the cipher bytes at α = 0.001: a 16-bit histogram of a small image has far fewer than the
    # ~5 expected counts per bin the χ² approximation needs, and a one-run α = 0.05 test fails a
    # perfect cipher one time in twenty.
    chi = histogram_chi_square(np.ascontiguousarray(cipher).view(np.uint8), bits=8, alpha=DIFFERENTIAL_ALPHA)
    correlations = {d: r.coefficient for d, r in adjacent_correlations(cipher, seed=seed).items()}
    side = 44
    cells = (cipher.shape[0] // side) * (cipher.shape[1] // side)
    local = local_entropy(cipher, bits=bits, blocks=min(30, cells), seed=seed, alpha=ALPHA) if cells else None
    tolerance = ENTROPY_TOLERANCE_PER_BIT * bits
    entropy_gap = abs(entropy.value - entropy.expected_random)
    worst = max((abs(r) if not math.isnan(r) else math.inf) for r in correlations.values())
    broken = not (chi.passed and worst < CORRELATION_LIMIT and entropy_gap <= tolerance)
    numbers = (
        f"entropy {entropy.value:.4f} (random {entropy.expected_random:.4f}), "
        f"χ² {chi.value:.1f} (pass < {chi.critical:.1f}), max |r| {worst:.4f}"
    )
    summary = (
        f"cipher image shows structure: {numbers}"
        if broken
        else f"cipher image looks uniform (not evidence of security): {numbers}"
    )
    evidence = {
        "entropy": entropy.value,
        "entropy_expected": entropy.expected_random,
        "entropy_tolerance": tolerance,
        "local_entropy": None if local is None else local.value,
        "local_entropy_interval": None if local is None else [local.lower, local.upper],
        "local_entropy_blocks": 0 if local is None else local.blocks,
        "local_entropy_passed": None if local is None else local.passed,
        "chi_square": chi.value,
        "chi_square_critical": chi.critical,
        "chi_square_passed": chi.passed,
        "chi_square_unit": "cipher bytes",
        "chi_square_alpha": DIFFERENTIAL_ALPHA,
        "correlations": correlations,
        "correlation_limit": CORRELATION_LIMIT,
        "bits": bits,
    }
    return _result(scheme, "statistical", broken, summary, evidence, {"cipher": cipher})


_ATTACKS: dict[str, Callable[[Scheme, np.ndarray, np.ndarray, int, int, int], AttackResult]] = {
    "known-plaintext": _known_plaintext,
    "key-reuse": _key_reuse,
    "differential": _differential,
    "tamper": _tamper,
    "wrong-key": _wrong_key,
    "statistical": _statistical,
}


# --------------------------------------------------------------------------- public


def run_attack(
    scheme: Scheme,
    attack: str,
    first: np.ndarray,
    second: np.ndarray,
    *,
    seed: int = 0,
    plain_bits: int | None = None,
) -> AttackResult:
    """Run one attack of :data:`ATTACK_NAMES` against one scheme instance.

    Parameters
    ----------
    scheme
        A :class:`deepkedi.analysis.schemes.Scheme`; its key is used as is.
    attack
        One of :data:`ATTACK_NAMES`; the threat model and verdict rule of each are in
        the module docstring and in the docstrings of ``_known_plaintext`` and the
        others.
    first, second
        Two different plain images of the same shape and dtype (2-D ``uint8`` or
        ``uint16``). NPCR, UACI and the statistics of the cipher images take their
        bit depth from the dtype.
    seed
        Seeds the attack's own choices (tamper positions, sampled blocks).
    plain_bits
        Stored bit depth of the plain images (DICOM *Bits Stored*: 12 for most CT and
        MR in ``uint16``), the range of every PSNR (known-plaintext, wrong-key).
        Default: the fewest bits, at least 8, that hold both images' values. On the
        full 16-bit range a noise image of 12-bit values scores over 30 dB against a
        12-bit image and would read as "recovered".

    Returns
    -------
    AttackResult

    Raises
    ------
    ValueError
        Unknown attack, or images that do not fit.
    TypeError
        Images of another dtype.

    Notes
    -----
    Only :class:`~deepkedi.errors.AuthenticationError` and
    :class:`~deepkedi.errors.FormatError` count as a scheme's detection (tamper,
    wrong key); anything else a scheme raises propagates.

    Examples
    --------
    >>> from deepkedi.analysis.schemes import make_scheme
    >>> from deepkedi.datasets import phantom
    >>> a = phantom("brain", "MR", seed=0, shape=(64, 64)).pixels
    >>> b = phantom("brain", "MR", seed=1, shape=(64, 64)).pixels
    >>> scheme = make_scheme("xor-fixed-key", seed=0, shape=(64, 64), bits=16)
    >>> run_attack(scheme, "key-reuse", a, b).verdict
    'broken'
    """
    try:
        run = _ATTACKS[attack]
    except KeyError:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACK_NAMES)}") from None
    a, b, bits, plain_bits = _check_images(first, second, plain_bits)
    return run(scheme, a, b, bits, plain_bits, seed)


def attack_matrix(
    schemes: Sequence[Scheme],
    first: np.ndarray,
    second: np.ndarray,
    *,
    seed: int = 0,
    on_result: Callable[[AttackResult], None] | None = None,
    plain_bits: int | None = None,
) -> list[AttackResult]:
    """Every attack of :data:`ATTACK_NAMES` against every scheme: scheme-major order.

    Parameters
    ----------
    schemes
        Scheme instances (each with its own key).
    first, second
        Two different plain images, as for :func:`run_attack`.
    seed
        Passed to every attack.
    on_result
        Called with each result as it is made (a progress bar's advance).
    plain_bits
        Stored bit depth of the plain images, as for :func:`run_attack`.

    Returns
    -------
    list of AttackResult
        ``len(schemes) * len(ATTACK_NAMES)`` results.
    """
    _check_images(first, second, plain_bits)
    results: list[AttackResult] = []
    for scheme in schemes:
        for attack in ATTACK_NAMES:
            result = run_attack(scheme, attack, first, second, seed=seed, plain_bits=plain_bits)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
