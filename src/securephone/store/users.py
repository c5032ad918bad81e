"""Web users: argon2 password hashes, the forced change of the default password, API tokens,
and the login throttle (lockout per client address).

The file (``users.json`` in the data directory) is written atomically with mode 0600. It holds
argon2id hashes (RFC 9106) and SHA-256 digests of API tokens, never a password or a token.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, overload

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from securephone.store.files import atomic_write

log = logging.getLogger(__name__)

DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "admin"  # the desk-phone default; it must be changed at first login
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256  # argon2 hashes anything, but a megabyte "password" is an attack
TOKEN_PREFIX = "sp_"
MAX_TRACKED = 10_000  # addresses whose failed logins are counted at once
MAX_NAME_KEY = 64  # a user name is counted by its first 64 characters (no user name is longer)


class UserError(Exception):
    """A password or token operation was refused; the message is meant for the user."""


@dataclass
class User:
    """One web user as stored: name, argon2 hash, and whether the password must change."""

    name: str
    password_hash: str
    must_change: bool = False
    changed_at: float = 0.0


@dataclass
class ApiToken:
    """A bearer token for the API; only its SHA-256 digest is kept."""

    id: str
    label: str
    user: str
    digest: str
    created_at: float


@dataclass
class _Data:
    users: dict[str, User] = field(default_factory=dict)
    tokens: list[ApiToken] = field(default_factory=list)


def check_password_policy(user: str, password: str) -> None:
    """Refuse passwords that are short, the default, or the user's own name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    if not lowered.strip():
        raise UserError("the password must not be blank")
    if not lowered.replace(DEFAULT_PASSWORD, "").strip() or lowered == user.lower():
        raise UserError("the password must not be 'admin' (repeated) or the user name")


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class UserStore:
    """The web users and API tokens of one phone, backed by a JSON file (0600)."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = path
        self.hasher = hasher or PasswordHasher()
        self._data = _Data()
        self._dummy_hash = ""
        self._load()

    # -- file --------------------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.path.exists():
            user = User(DEFAULT_USER, self.hasher.hash(DEFAULT_PASSWORD), must_change=True)
            self._data = _Data(users={user.name: user})
            self.save()
            log.warning("web login created: user 'admin', password 'admin' (must change at login)")
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            self._data = _Data(
                users={u["name"]: User(**u) for u in raw.get("users", [])},
                tokens=[ApiToken(**t) for t in raw.get("tokens", [])],
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise UserError(f"{self.path}: not a valid users file: {exc}") from None

    def save(self) -> None:
        """Write the file atomically with mode 0600."""
        data: dict[str, Any] = {
            "version": 1,
            "users": [asdict(u) for u in self._data.users.values()],
            "tokens": [asdict(t) for t in self._data.tokens],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(data, indent=2).encode("utf-8"), mode=0o600)

    # -- passwords ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The user names."""
        return sorted(self._data.users)

    def must_change(self, name: str) -> bool:
        """True while the user still has to replace the default password."""
        user = self._data.users.get(name)
        return user is not None and user.must_change

    def verify(self, name: str, password: str) -> bool:
        """True when ``password`` is the user's; the same argon2 work for unknown users."""
        user = self._data.users.get(name)
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        if user is None:
            self._burn(password)
            return False
        try:
            return self.hasher.verify(user.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _burn(self, password: str) -> None:
        """Spend one verification so that unknown names cannot be told apart by timing."""
        if not self._dummy_hash:
            self._dummy_hash = self.hasher.hash(secrets.token_hex(8))
        with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
            self.hasher.verify(self._dummy_hash, password)

    def hash_new_password(self, name: str, new: str) -> str:
        """Check ``new`` against the policy and return its argon2 hash (slow: run in a thread)."""
        if name not in self._data.users:
            raise UserError(f"no user named {name!r}")
        check_password_policy(name, new)
        user = self._data.users[name]
        try:
            if self.hasher.verify(user.password_hash, new):
                raise UserError("the new password must differ from the current one")
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            pass
        return self.hasher.hash(new)

    def set_password_hash(self, name: str, password_hash: str) -> None:
        """Store a hash made by :meth:`hash_new_password`, clear the forced change and revoke
        every API token of the user (in the same write): a token made while someone else knew
        the old password must not outlive it."""
        user = self._data.users[name]
        user.password_hash, user.must_change, user.changed_at = password_hash, False, time.time()
        revoked = [t for t in self._data.tokens if t.user == name]
        self._data.tokens = [t for t in self._data.tokens if t.user != name]
        self.save()
        log.info("web user %s changed the password; %d API token(s) revoked", name, len(revoked))

    def change_password(self, name: str, old: str, new: str) -> None:
        """Verify ``old``, check ``new`` and store it (synchronous; for tools and tests)."""
        if not self.verify(name, old):
            raise UserError("the current password is wrong")
        self.set_password_hash(name, self.hash_new_password(name, new))

    # -- API tokens --------------------------------------------------------------------------------
    def create_token(self, user: str, label: str) -> tuple[ApiToken, str]:
        """A new bearer token for ``user``; the secret is returned once and never stored."""
        label = label.strip()[:64] or "token"
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(secrets.token_hex(6), label, user, _token_digest(secret), time.time())
        self._data.tokens.append(token)
        self.save()
        log.info("web user %s created API token %s (%s)", user, token.id, label)
        return token, secret

    def tokens(self) -> list[ApiToken]:
        """Every API token (digests only)."""
        return list(self._data.tokens)

    def revoke_token(self, token_id: str) -> bool:
        """Remove a token; False when there is none with that id."""
        before = len(self._data.tokens)
        self._data.tokens = [t for t in self._data.tokens if t.id != token_id]
        if len(self._data.tokens) == before:
            return False
        self.save()
        log.info("API token %s revoked", token_id)
        return True

    def check_token(self, secret: str) -> str | None:
        """The user a bearer token belongs to, or None."""
        digest = _token_digest(secret)
        for token in self._data.tokens:
            if hmac.compare_digest(token.digest, digest):
                return token.user
        return None


class _Budget:
    """Failed logins per key (an address or a user name) within a window, plus the attempts
    still being checked; ``max_failures`` of them lock the key for ``lockout`` seconds."""

    def __init__(self, what: str, max_failures: int, window: float, lockout: float) -> None:
        self.what = what
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.failures: dict[str, deque[float]] = {}
        self.pending: dict[str, int] = {}
        self.locked_until: dict[str, float] = {}

    def locked_for(self, key: str, now: float) -> float:
        left = self.locked_until.get(key, 0.0) - now
        if left <= 0:
            self.locked_until.pop(key, None)
            return 0.0
        return left

    def _recent(self, key: str, now: float) -> deque[float]:
        if key not in self.failures and len(self.failures) >= MAX_TRACKED:
            self.failures.pop(next(iter(self.failures)))  # forget the oldest key
        recent = self.failures.setdefault(key, deque())
        while recent and now - recent[0] > self.window:
            recent.popleft()
        return recent

    def room(self, key: str, now: float) -> bool:
        """True when one more attempt fits: failures plus attempts in flight below the budget."""
        return len(self._recent(key, now)) + self.pending.get(key, 0) < self.max_failures

    def reserve(self, key: str) -> None:
        self.pending[key] = self.pending.get(key, 0) + 1

    def release(self, key: str) -> None:
        left = self.pending.get(key, 0) - 1
        if left > 0:
            self.pending[key] = left
        else:
            self.pending.pop(key, None)

    def fail(self, key: str, now: float) -> bool:
        """Count a failure; True when it locks ``key``."""
        recent = self._recent(key, now)
        recent.append(now)
        if len(recent) < self.max_failures:
            return False
        recent.clear()
        if key not in self.locked_until and len(self.locked_until) >= MAX_TRACKED:
            for expired in [k for k, until in self.locked_until.items() if until <= now]:
                del self.locked_until[expired]
            if len(self.locked_until) >= MAX_TRACKED:
                self.locked_until.pop(next(iter(self.locked_until)))  # the oldest lock
        self.locked_until[key] = now + self.lockout
        log.warning(
            "web login locked for %s %s for %d s after %d failed attempts within %d s",
            self.what,
            key,
            self.lockout,
            self.max_failures,
            self.window,
        )
        return True


@overload
def _name_key(user: str) -> str: ...
@overload
def _name_key(user: None) -> None: ...
def _name_key(user: str | None) -> str | None:
    """What a user name is counted by: a stranger's megabyte-long name costs 64 characters."""
    return None if user is None else user[:MAX_NAME_KEY]


class LoginThrottle:
    """Failed logins lock the client address (5 within ``window``) and the user name (10 within
    ``window``, from any address) for ``lockout`` seconds; many failures from everywhere slow
    every login down.

    The count is atomic: :meth:`begin` reserves the attempt *before* the slow password check, so
    concurrent wrong logins cannot get more checks than the budget; :meth:`failure` or
    :meth:`success` settles it.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 60.0,
        lockout: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        user_max_failures: int = 10,
        global_failures: int = 30,
        global_delay: float = 1.0,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.global_failures = global_failures
        self.global_delay = global_delay
        self._clock = clock
        self._address = _Budget("address", max_failures, window, lockout)
        self._user = _Budget("user", user_max_failures, window, lockout)
        self._everyone: deque[float] = deque(maxlen=MAX_TRACKED)

    @property
    def _failures(self) -> dict[str, deque[float]]:
        return self._address.failures

    def locked_for(self, address: str, user: str | None = None) -> float:
        """Seconds left of the lockout of ``address`` or ``user`` (0 when it may try)."""
        user = _name_key(user)
        now = self._clock()
        left = self._address.locked_for(address, now)
        if user is not None:
            left = max(left, self._user.locked_for(user, now))
        return left

    def begin(self, address: str, user: str) -> float:
        """Reserve one login attempt; 0 when reserved, else the seconds to wait (refused)."""
        user = _name_key(user)
        left = self.locked_for(address, user)
        if left > 0:
            return left
        now = self._clock()
        if not (self._address.room(address, now) and self._user.room(user, now)):
            return 1.0  # the budget is taken by attempts still being checked
        self._address.reserve(address)
        self._user.reserve(user)
        return 0.0

    def slowdown(self) -> float:
        """Seconds every login waits now: ``global_delay`` once ``global_failures`` logins
        failed within the window, from any addresses (a distributed guessing run)."""
        now = self._clock()
        while self._everyone and now - self._everyone[0] > self.window:
            self._everyone.popleft()
        return self.global_delay if len(self._everyone) >= self.global_failures else 0.0

    def failure(self, address: str, user: str | None = None) -> bool:
        """Settle a failed attempt (or count one); True when it locks the address or the user."""
        user = _name_key(user)
        now = self._clock()
        self._everyone.append(now)
        self._address.release(address)
        locked = self._address.fail(address, now)
        if user is not None:
            self._user.release(user)
            locked = self._user.fail(user, now) or locked
        return locked

    def success(self, address: str, user: str | None = None) -> None:
        """A good login settles its attempt and clears the failures of address and user."""
        user = _name_key(user)
        self._address.release(address)
        self._address.failures.pop(address, None)
        if user is not None:
            self._user.release(user)
            self._user.failures.pop(user, None)
