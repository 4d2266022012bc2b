"""DICOMweb (PS3.18): STOW-RS, QIDO-RS and WADO-RS over the encrypted archive (filled in by the archive work)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
