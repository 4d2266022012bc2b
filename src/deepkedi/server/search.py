"""Study search and attribute matching shared by QIDO-RS (:mod:`~deepkedi.server.dicomweb`) and C-FIND.

One policy and one set of matching rules for both protocols: a study is found only
when :func:`~deepkedi.server.policy.visible_filter` lets the principal see it, and
a researcher matches the de-identified values they are shown (PS3.15 Basic Profile).
Matching follows PS3.4 C.2.2.2: ``*`` and ``?`` wildcards, ``low-high`` date ranges,
case-insensitive person names.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from deepkedi.server.archive import Archive, StudyRecord
from deepkedi.server.policy import visible_filter
from deepkedi.server.principal import Principal, Role

__all__ = ["STUDY_MATCHING_KEYS", "find_studies", "matches_date", "matches_text"]

#: The study-level attributes a search may match on (beyond these, a search is refused).
STUDY_MATCHING_KEYS = (
    "StudyInstanceUID",
    "PatientID",
    "ModalitiesInStudy",
    "Modality",
    "PatientName",
    "StudyDate",
    "AccessionNumber",
)


def matches_text(value: Any, pattern: str, *, case: bool = True) -> bool:
    """Single-value or wildcard matching (``*``, ``?``) of ``value`` (its first value if multi-valued)."""
    text = "" if value is None else (value[0] if isinstance(value, list) and value else str(value))
    text = str(text)
    if not case:
        text, pattern = text.lower(), pattern.lower()
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(text, pattern)
    return text == pattern


def matches_date(value: Any, query: str) -> bool:
    """Single-value or range matching (``low-high``, either side open) of a DA, TM or DT value."""
    text = str(value or "")
    if "-" in query:
        low, _, high = query.partition("-")
        return bool(text) and (not low or text >= low) and (not high or text <= high)
    return text == query


def find_studies(
    archive: Archive,
    principal: Principal,
    matching: Mapping[str, Sequence[str]],
    view: Callable[[StudyRecord], Mapping[str, Any]],
) -> list[StudyRecord]:
    """The studies ``principal`` may see that match ``matching`` (keyword → values, any of which may match).

    ``view`` gives a study's attributes as the principal sees them (de-identified for a
    researcher), on which names, dates and accession numbers are matched. The UIDs,
    the Patient ID and the modality are matched in the index by their keyed hashes.

    Raises
    ------
    ValueError
        More than one Patient ID or modality, or a key outside :data:`STUDY_MATCHING_KEYS`.
    """
    unknown = sorted(set(matching) - set(STUDY_MATCHING_KEYS))
    if unknown:
        raise ValueError(f"matching on {unknown[0][:64]} is not supported")
    modalities = [*matching.get("ModalitiesInStudy", []), *matching.get("Modality", [])]
    patient_ids = list(matching.get("PatientID", []))
    if len(modalities) > 1 or len(patient_ids) > 1:
        raise ValueError("one PatientID and one modality per query")
    research = principal.role is Role.RESEARCHER
    studies = archive.studies(
        visible_filter(principal),
        study_uids=matching.get("StudyInstanceUID", []),
        deidentified=research,
        # A researcher matches the pseudonymous Patient ID they see, on the de-identified view below.
        patient_id=patient_ids[0] if patient_ids and not research else None,
        modality=modalities[0] if modalities else None,
    )
    selected = []
    for study in studies:
        attrs = view(study)
        if research and any(not matches_text(attrs.get("PatientID"), p) for p in patient_ids):
            continue
        if any(not matches_text(attrs.get("PatientName"), p, case=False) for p in matching.get("PatientName", [])):
            continue
        if any(not matches_date(attrs.get("StudyDate"), q) for q in matching.get("StudyDate", [])):
            continue
        if any(not matches_text(attrs.get("AccessionNumber"), q) for q in matching.get("AccessionNumber", [])):
            continue
        selected.append(study)
    return selected
