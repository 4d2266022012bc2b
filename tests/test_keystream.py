"""The shared ChaCha20 keystream against RFC 8439's known answer."""

from __future__ import annotations

from deepkedi.keystream import chacha20_keystream


def test_rfc8439_block_function_vector_1() -> None:
    # RFC 8439 Appendix A.1, test vector #1: key 0, nonce 0, block counter 0.
    expected = bytes.fromhex(
        "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
        "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
    )
    assert chacha20_keystream(bytes(32), 64) == expected
    assert chacha20_keystream(bytes(32), 10) == expected[:10]
