"""Every cipher scheme the reproduction compares, behind one interface. RESEARCH KEYS ONLY.

.. warning::

   The keys of these schemes are derived *deterministically from a small integer
   seed* so that experiments and attacks are reproducible. They are research keys,
   not keys: anyone who knows the seed knows the key. Production keys come from
   :func:`deepkedi.keys.generate_key` (hybrid) or ``kedi keygen``. Only ``hybrid``
   is a secure cipher; the others are here to be measured and attacked.

A :class:`Scheme` is bound to one key (its ``seed``), one image size and one bit
depth, and reuses that key for every image it encrypts, exactly as the paper uses
its key image; that reuse is what :mod:`deepkedi.analysis.attacks` studies.

=========================  ===========================================================  =====  =====  =====
name                       what it is                                                   lossy  auth.  det.
=========================  ===========================================================  =====  =====  =====
``paper``                  Deep-KEDI as published [1]_: speckle → zigzag → XOR with a    yes    no     no*
                           ZZ-GAN key image; decryption despeckles
``hybrid``                 the project's suite: HKDF-SHA256 + AES-256-GCM, fresh salt   no     yes    no
``xor-fixed-key``          XOR with one fixed random key image                          no     no     yes
``logistic-map``           logistic-map permutation + additive diffusion with feedback  no     no     yes
                           (Fridrich 1998 [2]_ style, keystream as Pareek et al. [3]_)
``arnold-cat-xor``         Arnold cat map permutation + XOR with a logistic keystream   no     no     yes
                           (Chen, Mao & Chui 2004 [4]_ style)
``aes-ctr-reused-nonce``   AES-256-CTR with one nonce reused for every image            no     no     yes
=========================  ===========================================================  =====  =====  =====

\\* ``paper`` is deterministic only with its speckle switched off (``speckle=False``).

One module per scheme: :mod:`~deepkedi.analysis.schemes.paper`,
:mod:`~deepkedi.analysis.schemes.hybrid`, :mod:`~deepkedi.analysis.schemes.xor_fixed_key`,
:mod:`~deepkedi.analysis.schemes.logistic_map`, :mod:`~deepkedi.analysis.schemes.arnold_cat_xor`
and :mod:`~deepkedi.analysis.schemes.aes_ctr_reused_nonce`; the interface, the research-key
derivation, the registry and the timing are in :mod:`~deepkedi.analysis.schemes.base`.

The baselines (the last four) write a small self-describing payload: a 14-byte
header (magic ``b"DKBL"``, scheme code, dtype code, rows and columns as big-endian
``u32``) followed by the cipher pixels as little-endian words in raster order. They
authenticate nothing: a flipped bit decrypts silently to a changed image.

References
----------
.. [1] K. Selvakumar and S. Lokesh, "Deep-KEDI" (ZZ-GAN key generation for medical
   image encryption), *Technology and Health Care* 32(5), 3231-3251 (2024).
   :doi:`10.3233/THC-231927`
.. [2] J. Fridrich, "Symmetric ciphers based on two-dimensional chaotic maps",
   *Int. J. Bifurcation and Chaos* 8(6), 1259-1284 (1998). :doi:`10.1142/S021812749800098X`
.. [3] N. K. Pareek, V. Patidar and K. K. Sud, "Image encryption using chaotic logistic
   map", *Image and Vision Computing* 24(9), 926-934 (2006). :doi:`10.1016/j.imavis.2006.02.021`
.. [4] G. Chen, Y. Mao and C. K. Chui, "A symmetric image encryption scheme based on 3D
   chaotic cat maps", *Chaos, Solitons & Fractals* 21(3), 749-761 (2004).
   :doi:`10.1016/j.chaos.2003.12.022`
.. [5] R. M. May, "Simple mathematical models with very complicated dynamics",
   *Nature* 261, 459-467 (1976). :doi:`10.1038/261459a0`
.. [6] V. I. Arnold and A. Avez, *Ergodic Problems of Classical Mechanics*, Benjamin (1968).
.. [7] E. Solak, C. Çokal, O. T. Yildiz and T. Biyikoğlu, "Cryptanalysis of Fridrich's
   chaotic image encryption", *Int. J. Bifurcation and Chaos* 20(5), 1405-1413 (2010).
   :doi:`10.1142/S0218127410026563`
.. [8] NIST SP 800-38A, "Recommendation for Block Cipher Modes of Operation" (2001),
   Sec. 6.5 and Appendix B (CTR counter blocks must never repeat under one key).
   :doi:`10.6028/NIST.SP.800-38A`

Examples
--------
>>> import numpy as np
>>> scheme = make_scheme("xor-fixed-key", seed=1, shape=(4, 5), bits=8)
>>> plain = np.arange(20, dtype=np.uint8).reshape(4, 5)
>>> np.array_equal(scheme.decrypt(scheme.encrypt(plain)), plain)
True
"""

from deepkedi.analysis.schemes.aes_ctr_reused_nonce import AesCtrReusedNonceScheme
from deepkedi.analysis.schemes.arnold_cat_xor import ArnoldCatXorScheme
from deepkedi.analysis.schemes.base import SCHEME_NAMES, Scheme, make_scheme, time_scheme
from deepkedi.analysis.schemes.hybrid import HybridScheme
from deepkedi.analysis.schemes.logistic_map import LogisticMapScheme
from deepkedi.analysis.schemes.paper import PaperScheme
from deepkedi.analysis.schemes.xor_fixed_key import XorFixedKeyScheme

__all__ = [
    "SCHEME_NAMES",
    "AesCtrReusedNonceScheme",
    "ArnoldCatXorScheme",
    "HybridScheme",
    "LogisticMapScheme",
    "PaperScheme",
    "Scheme",
    "XorFixedKeyScheme",
    "make_scheme",
    "time_scheme",
]
