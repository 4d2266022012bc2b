"""Who may see which study: one policy, used by every archive and DICOMweb route.

- technologist: uploads; sees only the studies they uploaded;
- radiologist: sees the studies assigned to them or to their group, and those
  they opened by break-glass (an unexpired grant, given for a reason and audited:
  :mod:`deepkedi.server.grants`), which the principal carries for the request;
- researcher: every study, but only through the de-identified view (PS3.15 Basic
  Profile: UIDs replaced by keyed pseudonyms, names, IDs and dates removed or
  replaced); the UIDs in a researcher's URLs are the de-identified ones;
- admin, auditor: no images (403); the admin assigns and revokes studies.

A study the principal may not see is answered exactly like a study that does not
exist (404), so that guessing UIDs tells nothing about what the archive holds.
"""

from __future__ import annotations

import sqlalchemy as sa

from deepkedi.server.archive import StudyIndex, StudyRecord
from deepkedi.server.principal import Principal, Role

__all__ = [
    "IMAGE_ROLES",
    "UPLOAD_ROLES",
    "assigned_filter",
    "is_assigned",
    "may_see",
    "may_upload",
    "may_view_images",
    "visible_filter",
]

#: Roles that may reach image routes at all (search, view, download).
IMAGE_ROLES = frozenset({Role.TECHNOLOGIST, Role.RADIOLOGIST, Role.RESEARCHER})
#: Roles that may upload (STOW-RS).
UPLOAD_ROLES = frozenset({Role.TECHNOLOGIST})


def may_view_images(principal: Principal) -> bool:
    """Whether the role may use image routes at all (otherwise 403, whatever the study)."""
    return principal.role in IMAGE_ROLES


def may_upload(principal: Principal) -> bool:
    return principal.role in UPLOAD_ROLES


def assigned_filter(principal: Principal) -> sa.ColumnElement[bool]:
    """The SQL condition selecting the studies assigned to a radiologist or to their group (false for others)."""
    if principal.role is not Role.RADIOLOGIST:
        return sa.false()
    mine = StudyIndex.assigned_user_id == principal.user_id
    if principal.group:
        return sa.or_(mine, StudyIndex.assigned_group == principal.group)
    return mine


def is_assigned(principal: Principal, study: StudyRecord) -> bool:
    """The same rule as :func:`assigned_filter`, for one study already loaded."""
    if principal.role is not Role.RADIOLOGIST:
        return False
    if study.assigned_user_id is not None and study.assigned_user_id == principal.user_id:
        return True
    return bool(principal.group) and study.assigned_group == principal.group


def visible_filter(principal: Principal) -> sa.ColumnElement[bool]:
    """The SQL condition selecting the studies ``principal`` may see (false for roles without images)."""
    if principal.role is Role.TECHNOLOGIST:
        return StudyIndex.uploader_id == principal.user_id
    if principal.role is Role.RADIOLOGIST:
        granted = [grant.study_id for grant in principal.break_glass]
        if granted:
            return sa.or_(assigned_filter(principal), StudyIndex.id.in_(granted))
        return assigned_filter(principal)
    if principal.role is Role.RESEARCHER:
        return sa.true()  # every study, through the de-identified view only
    return sa.false()


def may_see(principal: Principal, study: StudyRecord) -> bool:
    """The same rule as :func:`visible_filter`, for one study already loaded."""
    if principal.role is Role.TECHNOLOGIST:
        return study.uploader_id == principal.user_id
    if principal.role is Role.RADIOLOGIST:
        return is_assigned(principal, study) or any(grant.study_id == study.id for grant in principal.break_glass)
    return principal.role is Role.RESEARCHER
