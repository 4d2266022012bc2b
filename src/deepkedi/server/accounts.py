"""Users, sign-in sessions and API tokens: the tables and what is done with them (docs/SERVICE.md).

Passwords are kept as argon2id hashes (argon2-cffi's :class:`~argon2.PasswordHasher`);
session cookies and API tokens are 32 random bytes of which only the SHA-256 is
stored, so a copy of the database opens no session. A session's CSRF token is not
stored at all: it is an HMAC of the session token, recomputed on each request.
Failed sign-ins are counted in memory (per process, forgotten on restart), by user
name and by client address, so that guessing is throttled without writing what was
typed into a user-name field (it may be a password) anywhere.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import constant_time, hashes
from cryptography.hazmat.primitives.hmac import HMAC
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from deepkedi.server.db import Base
from deepkedi.server.principal import Principal, Role

__all__ = [
    "ADMIN_USERNAME",
    "MIN_PASSWORD_LENGTH",
    "TOKEN_PREFIX",
    "ApiToken",
    "LoginThrottle",
    "ThrottleDecision",
    "User",
    "UserSession",
    "authenticate",
    "change_password",
    "check_password",
    "check_username",
    "close_session",
    "csrf_matches",
    "csrf_token_for",
    "disable_user",
    "find_user",
    "issue_api_token",
    "list_api_tokens",
    "list_users",
    "open_session",
    "principal_for_session",
    "principal_for_token",
    "revoke_api_token",
    "token_digest",
]

#: The first administrator's user name, created on the service's first run.
ADMIN_USERNAME = "admin"
#: Shortest password a user is created with (NIST SP 800-63B asks for at least 8; a clinical service, 12).
MIN_PASSWORD_LENGTH = 12
#: Prefix of API tokens, so that a leaked one is recognisable (secret scanners) and never taken for a cookie.
TOKEN_PREFIX = "kedi_"

_USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_CSRF_INFO = b"deepkedi/v1 service csrf"

_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 low-memory profile
# Verified when the user name is unknown, so that the answer takes as long as for a known one.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class User(Base):
    """A person who signs in: a unique name, an argon2 password hash, one role, an optional group."""

    __tablename__ = "service_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.Text)
    role: Mapped[str] = mapped_column(sa.String(16))
    group: Mapped[str | None] = mapped_column("group_name", sa.String(64), default=None)
    disabled: Mapped[bool] = mapped_column(default=False)
    #: Seconds since the epoch (UTC).
    created: Mapped[float] = mapped_column(sa.Float)

    def principal(self, address: str | None) -> Principal:
        return Principal(
            user_id=self.id, username=self.username, role=Role(self.role), group=self.group, address=address
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "username": self.username,
            "role": self.role,
            "group": self.group,
            "disabled": self.disabled,
            "created": _iso(self.created),
        }


class UserSession(Base):
    """A browser sign-in: the SHA-256 of the cookie's token (never the token), its user and its end."""

    __tablename__ = "service_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("service_users.id", ondelete="CASCADE"), index=True)
    created: Mapped[float] = mapped_column(sa.Float)
    expires: Mapped[float] = mapped_column(sa.Float)


class ApiToken(Base):
    """A bearer token of an API client: the SHA-256 of the token (shown once, never stored), its user and its end."""

    __tablename__ = "service_api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("service_users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    created: Mapped[float] = mapped_column(sa.Float)
    #: None: until the token is revoked or the user is disabled.
    expires: Mapped[float | None] = mapped_column(sa.Float, default=None)

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "label": self.label, "created": _iso(self.created), "expires": _iso(self.expires)}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def token_digest(token: str) -> str:
    """SHA-256 (hex) of a session or API token: what the database keeps.

    A plain hash suffices (no salt, no slow KDF): the tokens are 256 random bits,
    so there is nothing to guess, and the lookup must be one indexed equality.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token_for(session_token: str) -> str:
    """The CSRF token of a session: HMAC-SHA256 keyed by the session token (nothing more to store)."""
    mac = HMAC(session_token.encode("utf-8"), hashes.SHA256())
    mac.update(_CSRF_INFO)
    return mac.finalize().hex()


def csrf_matches(session_token: str, presented: str | None) -> bool:
    """Whether ``presented`` is the session's CSRF token (constant-time comparison)."""
    if not presented:
        return False
    return constant_time.bytes_eq(csrf_token_for(session_token).encode("ascii"), presented.encode("utf-8"))


# ------------------------------------------------------------------------------------ users


def check_username(username: str) -> str:
    """A user name as stored: lower case ASCII letters, digits, ``.``, ``_``, ``-``; 1 to 64 characters."""
    if not isinstance(username, str) or not 1 <= len(username) <= 64 or not set(username) <= _USERNAME_CHARS:
        raise ValueError("a user name is 1 to 64 characters: lower-case letters, digits, '.', '_' or '-'")
    return username


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise ValueError("a password has at most 1024 characters")
    return password


def create_user(
    db: Session, *, username: str, password: str, role: Role | str, group: str | None = None, now: float | None = None
) -> User:
    """Add a user (the caller commits). Raises ``ValueError`` for a bad name, role or password, or a taken name."""
    check_username(username)
    check_password(password)
    role = Role(role)
    if group is not None and (not group or len(group) > 64 or not group.isprintable()):
        raise ValueError("a group name is 1 to 64 printable characters")
    if db.scalar(sa.select(User.id).where(User.username == username)) is not None:
        raise ValueError(f"user {username!r} already exists")
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        role=role.value,
        group=group,
        disabled=False,
        created=time.time() if now is None else now,
    )
    db.add(user)
    db.flush()
    return user


def list_users(db: Session) -> list[User]:
    return list(db.scalars(sa.select(User).order_by(User.username)))


def find_user(db: Session, username: str) -> User | None:
    return db.scalar(sa.select(User).where(User.username == username))


def disable_user(db: Session, user: User) -> None:
    """Disable ``user`` and end every session and token of theirs (the caller commits)."""
    user.disabled = True
    db.execute(sa.delete(UserSession).where(UserSession.user_id == user.id))
    db.execute(sa.delete(ApiToken).where(ApiToken.user_id == user.id))


def authenticate(db: Session, username: str, password: str) -> User | None:
    """The enabled user whose name and password these are, else None (same work either way)."""
    user = find_user(db, username) if isinstance(username, str) else None
    stored = user.password_hash if user is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def change_password(db: Session, user_id: int, current: str, new: str, *, keep_session: str | None = None) -> bool:
    """Set a new password if ``current`` is right; ends the user's other sessions. False: ``current`` is wrong.

    Raises ``ValueError`` when ``new`` is too short or too long (the caller commits).
    """
    check_password(new)
    user = db.get(User, user_id)
    if user is None or user.disabled:
        return False
    try:
        _hasher.verify(user.password_hash, current)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    user.password_hash = _hasher.hash(new)
    others = sa.delete(UserSession).where(UserSession.user_id == user.id)
    if keep_session is not None:
        others = others.where(UserSession.token_sha256 != token_digest(keep_session))
    db.execute(others)
    return True


# ------------------------------------------------------------------------ sessions and tokens


def open_session(db: Session, user: User, *, lifetime: float, now: float | None = None) -> str:
    """Start a browser session for ``user``; returns the cookie's token (the caller commits)."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    db.add(UserSession(token_sha256=token_digest(token), user_id=user.id, created=now, expires=now + lifetime))
    # Each sign-in is a moment to forget the user's ended sessions.
    db.execute(sa.delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires <= now))
    return token


def close_session(db: Session, token: str) -> None:
    db.execute(sa.delete(UserSession).where(UserSession.token_sha256 == token_digest(token)))


def principal_for_session(
    db: Session, token: str, *, address: str | None, now: float | None = None
) -> Principal | None:
    now = time.time() if now is None else now
    user = db.scalar(_USER_OF_SESSION, {"digest": token_digest(token), "now": now})
    return None if user is None else user.principal(address)


#: The enabled user a live browser session belongs to (built once, as :data:`_USER_OF_TOKEN`).
_USER_OF_SESSION = (
    sa.select(User)
    .join(UserSession, UserSession.user_id == User.id)
    .where(
        UserSession.token_sha256 == sa.bindparam("digest"),
        UserSession.expires > sa.bindparam("now"),
        User.disabled.is_(False),
    )
)


def issue_api_token(
    db: Session, user_id: int, *, label: str | None = None, lifetime: float | None = None, now: float | None = None
) -> tuple[ApiToken, str]:
    """A new bearer token for the user: the row and the token (shown once; only its hash is kept)."""
    if label is not None and (len(label) > 128 or not label.isprintable()):
        raise ValueError("a token label is at most 128 printable characters")
    if lifetime is not None and lifetime <= 0:
        raise ValueError("a token's lifetime is a positive number of seconds")
    now = time.time() if now is None else now
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        token_sha256=token_digest(token),
        user_id=user_id,
        label=label,
        created=now,
        expires=None if lifetime is None else now + lifetime,
    )
    db.add(row)
    db.flush()
    return row, token


def list_api_tokens(db: Session, user_id: int) -> list[ApiToken]:
    return list(db.scalars(sa.select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)))


def revoke_api_token(db: Session, user_id: int, token_id: int) -> bool:
    """Delete the user's token ``token_id``; False when the user has no such token (the caller commits)."""
    done = db.execute(sa.delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))
    return bool(getattr(done, "rowcount", 0))


def principal_for_token(db: Session, token: str, *, address: str | None, now: float | None = None) -> Principal | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    now = time.time() if now is None else now
    user = db.scalar(_USER_OF_TOKEN, {"digest": token_digest(token), "now": now})
    return None if user is None else user.principal(address)


#: The enabled user a live bearer token belongs to. Built once: every API request runs it,
#: and building the statement cost about as much as running it.
_USER_OF_TOKEN = (
    sa.select(User)
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(
        ApiToken.token_sha256 == sa.bindparam("digest"),
        sa.or_(ApiToken.expires.is_(None), ApiToken.expires > sa.bindparam("now")),
        User.disabled.is_(False),
    )
)


# ------------------------------------------------------------------------------- throttling


@dataclass(frozen=True)
class ThrottleDecision:
    allowed: bool
    #: Seconds until the next attempt may be made (0 when allowed).
    retry_after: int = 0


class LoginFailure(Base):
    """One failed sign-in, counted for a user name and for a client address (keyed hashes, never the names)."""

    __tablename__ = "service_login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``user:`` or ``address:`` and a keyed hash of the (case-folded) user name or the address.
    subject: Mapped[str] = mapped_column(sa.String(80), index=True)
    #: When (seconds since the epoch: every process of the service shares the clock).
    at: Mapped[float] = mapped_column(sa.Float, index=True)


class LoginThrottle:
    """Failed sign-ins per user name and per client address in a sliding window, kept in the database.

    An attempt is refused (HTTP 429) once ``per_user`` failures for that user name, or
    ``per_address`` failures from that address, fall within the last ``window`` seconds;
    the password is then not even checked. A successful sign-in clears the user name's
    count (not the address's). The failures are rows of ``service_login_failures``, so
    every process of one service (``kedi serve --workers N``) counts the same attempts
    and a restart forgets nothing; a row holds ``keyed_hash`` of the name or address
    (what is typed into the user-name field may be a password: it is never stored), and
    rows older than the window are deleted at each failure, so a flood of made-up names
    costs at most one row per attempt for ``window`` seconds.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session],
        keyed_hash: Callable[[str, str], str],
        *,
        per_user: int,
        per_address: int,
        window: float,
    ) -> None:
        self.sessions, self.read_sessions, self.keyed_hash = sessions, read_sessions, keyed_hash
        self.per_user, self.per_address, self.window = per_user, per_address, window

    def _subjects(self, username: str, address: str | None) -> Iterable[tuple[str, int]]:
        yield "user:" + self.keyed_hash("login-user", username.casefold()), self.per_user
        if address:
            yield "address:" + self.keyed_hash("login-address", address), self.per_address

    def check(self, username: str, address: str | None, *, now: float | None = None) -> ThrottleDecision:
        now = time.time() if now is None else now
        wait = 0.0
        with self.read_sessions() as db:
            for subject, limit in self._subjects(username, address):
                if limit <= 0:
                    continue
                recent = list(
                    db.scalars(
                        sa.select(LoginFailure.at)
                        .where(LoginFailure.subject == subject, LoginFailure.at > now - self.window)
                        .order_by(LoginFailure.at.desc())
                        .limit(limit)
                    )
                )
                if len(recent) >= limit:
                    wait = max(wait, recent[-1] + self.window - now)
        if wait > 0:
            return ThrottleDecision(False, max(1, int(wait + 0.999)))
        return ThrottleDecision(True)

    def failed(self, username: str, address: str | None, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.sessions.begin() as db:
            db.execute(sa.delete(LoginFailure).where(LoginFailure.at <= now - self.window))
            db.add_all(LoginFailure(subject=subject, at=now) for subject, _ in self._subjects(username, address))

    def succeeded(self, username: str) -> None:
        subject = next(iter(self._subjects(username, None)))[0]
        with self.sessions.begin() as db:
            db.execute(sa.delete(LoginFailure).where(LoginFailure.subject == subject))
