"""The sample corpus: real medical images shipped inside installed packages.

pydicom, nibabel and scikit-image carry small real images for their own tests and
examples. deepkedi's demos, tests and quick experiments use them in place of a
download: every file is found at run time inside the installed package's folder
(:func:`importlib.util.find_spec`, which locates a package without importing it),
and nothing is ever fetched from the network. The paper's datasets (ADNI, LIDC,
LiTS, BraTS...) are the user's to point at; :mod:`deepkedi.datasets.phantoms`
makes synthetic images at clinical sizes when more or larger images are needed.

Names
-----
Every entry is named ``"<source>-<file name>"``, where ``<source>`` is the name
the package is imported under (``pydicom``, ``nibabel``, ``skimage``) and
``<file name>`` is the file's own name, unchanged: ``"pydicom-CT_small.dcm"``,
``"nibabel-0.dcm"``, ``"skimage-retina.jpg"``. The prefix keeps bare names such
as ``0.dcm`` unambiguous and says at a glance where a file comes from.

Labels
------
Each label was checked against the file itself (DICOM tags such as
BodyPartExamined, StudyDescription and SeriesDescription, and the pixels).

``organ``
    What the image shows, one of :data:`ORGANS`. ``"head"`` is used where the
    slice is mostly not brain (skull base, a tiny crop) or for the Shepp–Logan
    head phantom; ``"brain"`` where brain tissue fills the image; ``"chest"``
    for a thoracic slice dominated by spine and lung bases.
``modality``
    A DICOM modality code, one of :data:`MODALITIES`: ``CT``, ``MR``, ``US``
    (ultrasound) and ``OP`` (ophthalmic photography, for fundus photographs).
    The Shepp–Logan phantom is labelled ``CT``: it is by construction an
    idealised CT head section (Shepp and Logan, 1974), and ``content`` says it
    is a phantom.
``content``
    One of :data:`CONTENTS`: ``"anatomy"`` (a real patient image),
    ``"phantom"`` (a mathematical phantom), or ``"test pattern"`` (a real
    header whose pixels were replaced by a synthetic pattern: nibabel's
    ``0.dcm``/``1.dcm`` hold a brain DTI header over a 0..4095 ramp).
    Statistics such as pixel correlation are meaningless on a test pattern.

pydicom, nibabel and scikit-image are core dependencies. scikit-image's entries
are still optional: any of its files that a given release does not ship is left
out (and all three when scikit-image is absent). A missing file of pydicom or
nibabel raises :class:`FileNotFoundError` naming the package.

References
----------
.. [1] L. A. Shepp and B. F. Logan, "The Fourier reconstruction of a head
   section", IEEE Trans. Nucl. Sci. 21(3), 21-43, 1974.
   DOI: 10.1109/TNS.1974.6499235
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "COMPRESSIONS",
    "CONTENTS",
    "MODALITIES",
    "ORGANS",
    "SampleImage",
    "sample_corpus",
    "sample_names",
    "sample_path",
]

#: What a corpus image shows. Lower case, as in the ``organ`` of a phantom.
ORGANS: frozenset[str] = frozenset({"brain", "head", "chest", "liver", "lymph node", "uterus", "eye"})

#: DICOM modality codes (PS3.3 C.7.3.1.1.1) used by the corpus.
MODALITIES: frozenset[str] = frozenset({"CT", "MR", "US", "OP"})

#: What the pixels are: a patient image, a mathematical phantom, or a test pattern.
CONTENTS: frozenset[str] = frozenset({"anatomy", "phantom", "test pattern"})

#: How the pixel data is stored in the file.
COMPRESSIONS: frozenset[str] = frozenset({"none", "JPEG 2000 (lossless)", "gzip", "JPEG (lossy)", "PNG (lossless)"})


@dataclass(frozen=True)
class SampleImage:
    """One real image file of the sample corpus.

    Parameters
    ----------
    name
        Unique name, ``"<source>-<file name>"`` (see the module notes).
    path
        Where the file lies inside the installed package.
    organ
        What the image shows, one of :data:`ORGANS`.
    modality
        DICOM modality code, one of :data:`MODALITIES`.
    package
        The distribution that ships the file, as ``pip`` names it
        (``"pydicom"``, ``"nibabel"``, ``"scikit-image"``).
    description
        One or two sentences on what the image is, checked against the file.
    size_bytes
        Size of the file on disk, read when the corpus was listed.
    content
        ``"anatomy"``, ``"phantom"`` or ``"test pattern"`` (:data:`CONTENTS`).
    shape
        Size as the file's header states it: DICOM ``(rows, columns[, samples])``;
        NIfTI ``dim[1:]``, i.e. ``(x, y, z[, t])``; raster images
        ``(height, width[, channels])``.
    bits_stored
        Significant bits per sample: DICOM BitsStored, NIfTI bitpix, 8 for
        the PNG and JPEG files.
    compression
        How the pixels are stored, one of :data:`COMPRESSIONS`.
    """

    name: str
    path: Path
    organ: str
    modality: str
    package: str
    description: str
    size_bytes: int
    content: str = "anatomy"
    shape: tuple[int, ...] = ()
    bits_stored: int = 0
    compression: str = "none"


@dataclass(frozen=True)
class _Entry:
    """A catalogue row: everything but what only the installed file can tell."""

    source: str  # import name, the prefix of the name
    package: str  # distribution name, what to install
    folder: tuple[str, ...]  # inside the package
    filename: str
    organ: str
    modality: str
    content: str
    shape: tuple[int, ...]
    bits_stored: int
    compression: str
    description: str
    optional: bool = False

    @property
    def name(self) -> str:
        return f"{self.source}-{self.filename}"


_PYDICOM = ("pydicom", "pydicom", ("data", "test_files"))
_NIBABEL = ("nibabel", "nibabel", ("tests", "data"))
_SKIMAGE = ("skimage", "scikit-image", ("data",))

# The order is the order of ``sample_corpus()``: pydicom, nibabel, scikit-image.
_CATALOGUE: tuple[_Entry, ...] = (
    _Entry(
        *_PYDICOM,
        "CT_small.dcm",
        "chest",
        "CT",
        "anatomy",
        (128, 128),
        16,
        "none",
        "Axial chest CT (GE), a 128x128 crop at 0.66 mm around a thoracic vertebra: spinal canal, "
        "paraspinal muscles, descending aorta and the posterior lungs with vessels. Signed 16-bit "
        "words; RescaleIntercept -1024 gives Hounsfield units.",
    ),
    _Entry(
        *_PYDICOM,
        "MR_small.dcm",
        "head",
        "MR",
        "anatomy",
        (64, 64),
        16,
        "none",
        "A 64x64 crop (0.31 mm pixels, 20 mm across) of a heavily T2-weighted 3D spin-echo head "
        "study (Toshiba, TR 4000 ms / TE 240 ms, 0.8 mm slices): brain tissue beside bright CSF. "
        "No body-part tag; the field is too small to name the structures with certainty.",
    ),
    _Entry(
        *_PYDICOM,
        "examples_overlay.dcm",
        "liver",
        "MR",
        "anatomy",
        (300, 484),
        12,
        "none",
        "Axial T1-weighted fat-saturated contrast MR of the upper abdomen (Siemens VIBE, "
        "StudyDescription 'abdomen^liver', SeriesDescription 'marked lesion'): liver with a "
        "lesion, kidneys, spine. Carries an overlay plane marking the lesion.",
    ),
    _Entry(
        *_PYDICOM,
        "examples_jpeg2k.dcm",
        "lymph node",
        "US",
        "anatomy",
        (480, 640, 3),
        8,
        "JPEG 2000 (lossless)",
        "Small-parts ultrasound (GE) of a lymph node with power Doppler colour overlay and burnt-in "
        "annotations; colour (YBR_RCT) stored as lossless JPEG 2000.",
    ),
    _Entry(
        *_PYDICOM,
        "examples_palette.dcm",
        "uterus",
        "US",
        "anatomy",
        (350, 800),
        8,
        "none",
        "Obstetric ultrasound screen (Philips, 'Gen OB' preset) in PALETTE COLOR: a curved-array "
        "sector that shows near-field speckle only, with burnt-in text and a caliper; mostly black.",
    ),
    _Entry(
        *_PYDICOM,
        "J2K_pixelrep_mismatch.dcm",
        "brain",
        "CT",
        "anatomy",
        (512, 512),
        13,
        "JPEG 2000 (lossless)",
        "Axial head CT (BodyPartExamined HEAD) at the skull base, 0.43 mm pixels: temporal lobes, "
        "brainstem and cerebellum, orbits, sinuses and mastoid air cells; Hounsfield units with "
        "-2000 outside the field of view. The JPEG 2000 stream's signedness disagrees with the "
        "DICOM PixelRepresentation, which is what the file tests.",
    ),
    _Entry(
        *_NIBABEL,
        "0.dcm",
        "brain",
        "MR",
        "test pattern",
        (256, 256),
        12,
        "none",
        "Header of a Siemens brain diffusion (DTI, b=0) mosaic, 'CBU^Neuroimaging'; the pixel data "
        "was replaced by a ramp (value = index mod 4096), so the pixels show no anatomy.",
    ),
    _Entry(
        *_NIBABEL,
        "1.dcm",
        "brain",
        "MR",
        "test pattern",
        (256, 256),
        12,
        "none",
        "The next instance of the same DTI series as nibabel-0.dcm, with the same ramp in place of its pixels.",
    ),
    _Entry(
        *_NIBABEL,
        "anatomical.nii",
        "brain",
        "MR",
        "anatomy",
        (33, 41, 25),
        16,
        "none",
        "Structural brain MR volume spatially normalised by SPM ('spm - 3D normalized'), 2 mm "
        "voxels, big-endian int16 in a single-file NIfTI-1.",
    ),
    _Entry(
        *_NIBABEL,
        "example4d.nii.gz",
        "brain",
        "MR",
        "anatomy",
        (128, 96, 24, 2),
        16,
        "gzip",
        "Two volumes of a brain EPI time series (FSL), 2x2x2.2 mm voxels, TR 2 s, int16 in a gzip-compressed NIfTI-1.",
    ),
    _Entry(
        *_SKIMAGE,
        "retina.jpg",
        "eye",
        "OP",
        "anatomy",
        (1411, 1411, 3),
        8,
        "JPEG (lossy)",
        "Colour fundus photograph of a normal left eye (Wikimedia, CC0): optic disc, macula and "
        "retinal vessels inside the circular field.",
        optional=True,
    ),
    _Entry(
        *_SKIMAGE,
        "microaneurysms.png",
        "eye",
        "OP",
        "anatomy",
        (102, 102),
        8,
        "PNG (lossless)",
        "Grey 102x102 detail (green channel) of a fundus photograph from the HRF database showing "
        "microaneurysms of diabetic retinopathy.",
        optional=True,
    ),
    _Entry(
        *_SKIMAGE,
        "phantom.png",
        "head",
        "CT",
        "phantom",
        (400, 400, 3),
        8,
        "PNG (lossless)",
        "The Shepp-Logan head phantom, 400x400, the same grey level in all three RGB channels (six distinct values).",
        optional=True,
    ),
)

_BY_NAME: dict[str, _Entry] = {entry.name: entry for entry in _CATALOGUE}
if len(_BY_NAME) != len(_CATALOGUE):  # pragma: no cover - guards edits to the table above
    raise RuntimeError("sample corpus names are not unique")


def _package_dir(source: str) -> Path | None:
    """Folder of an installed package, or None when it is not installed.

    ``find_spec`` locates the package without importing it: importing
    scikit-image only to find a PNG would cost a second.
    """
    try:
        spec = importlib.util.find_spec(source)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _locate(entry: _Entry) -> Path | None:
    """Path of an entry's file; None for an optional entry that is not at hand.

    Raises
    ------
    FileNotFoundError
        A required package is missing, or does not ship the file.
    """
    root = _package_dir(entry.source)
    if root is None:
        if entry.optional:
            return None
        raise FileNotFoundError(
            f"sample {entry.name!r} needs the {entry.package!r} package, which is not installed; "
            f"install it with `pip install {entry.package}`"
        )
    path = root.joinpath(*entry.folder, entry.filename)
    if not path.is_file():
        if entry.optional:
            return None
        raise FileNotFoundError(
            f"sample {entry.name!r}: the installed {entry.package!r} package does not ship "
            f"{'/'.join((*entry.folder, entry.filename))} (looked in {root}); "
            f"reinstall {entry.package} from a full wheel"
        )
    return path


def _sample(entry: _Entry, path: Path) -> SampleImage:
    return SampleImage(
        name=entry.name,
        path=path,
        organ=entry.organ,
        modality=entry.modality,
        package=entry.package,
        description=entry.description,
        size_bytes=path.stat().st_size,
        content=entry.content,
        shape=entry.shape,
        bits_stored=entry.bits_stored,
        compression=entry.compression,
    )


def sample_corpus(*, include_optional: bool = True) -> list[SampleImage]:
    """List the sample images available in this environment.

    Parameters
    ----------
    include_optional
        Include the scikit-image files when scikit-image is installed. When
        False, or when it is not installed, only pydicom's and nibabel's
        files are listed.

    Returns
    -------
    list of SampleImage
        In catalogue order: pydicom, nibabel, then scikit-image.

    Raises
    ------
    FileNotFoundError
        pydicom or nibabel (required dependencies) is missing or lacks one of
        its files; the message names the package.

    Examples
    --------
    >>> from deepkedi.datasets import sample_corpus
    >>> ct = [s for s in sample_corpus() if s.modality == "CT" and s.content == "anatomy"]
    >>> [s.name for s in ct]
    ['pydicom-CT_small.dcm', 'pydicom-J2K_pixelrep_mismatch.dcm']
    """
    samples = []
    for entry in _CATALOGUE:
        if entry.optional and not include_optional:
            continue
        path = _locate(entry)
        if path is not None:
            samples.append(_sample(entry, path))
    return samples


def sample_names(*, include_optional: bool = True) -> list[str]:
    """Names of the sample images available here, in catalogue order.

    Parameters
    ----------
    include_optional
        As for :func:`sample_corpus`.
    """
    return [sample.name for sample in sample_corpus(include_optional=include_optional)]


def sample_path(name: str) -> Path:
    """Path of one sample image, by name.

    Parameters
    ----------
    name
        A name from :func:`sample_names`, such as ``"pydicom-CT_small.dcm"``.

    Raises
    ------
    ValueError
        No sample has that name; the message suggests the closest names.
    FileNotFoundError
        The sample's package is not installed or does not ship the file; the
        message names the package to install.

    Examples
    --------
    >>> from deepkedi.datasets import sample_path
    >>> sample_path("pydicom-CT_small.dcm").name
    'CT_small.dcm'
    """
    entry = _BY_NAME.get(name)
    if entry is None:
        # A bare file name ("CT_small.dcm") is the likeliest slip: point at its prefixed name.
        prefixed = [e.name for e in _CATALOGUE if e.filename == name]
        close = prefixed or difflib.get_close_matches(str(name), list(_BY_NAME), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"no sample image is named {name!r}{hint} (see sample_names())")
    path = _locate(entry)
    if path is None:
        raise FileNotFoundError(
            f"sample {name!r} needs {entry.package!r} with its data files, which are not installed here; "
            f"reinstall it with `pip install --force-reinstall {entry.package}`"
        )
    return path
