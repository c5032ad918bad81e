"""Web users: argon2 hashes, the forced change of admin/admin, tokens, the login throttle."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from securephone.store.users import (
    DEFAULT_PASSWORD,
    LoginThrottle,
    UserError,
    UserStore,
    check_password_policy,
)

from .conftest import fast_hasher


def store(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "users.json", fast_hasher())


def test_first_start_creates_admin_admin_that_must_change(tmp_path: Path) -> None:
    users = store(tmp_path)
    assert users.names() == ["admin"]
    assert users.must_change("admin")
    assert users.verify("admin", "admin")
    assert not users.verify("admin", "Admin")
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600


def test_file_holds_argon2id_hashes_never_the_password(tmp_path: Path) -> None:
    users = store(tmp_path)
    users.change_password("admin", "admin", "a-much-better-one")
    text = (tmp_path / "users.json").read_text()
    assert "a-much-better-one" not in text
    hashed = json.loads(text)["users"][0]["password_hash"]
    assert hashed.startswith("$argon2id$")
    reloaded = store(tmp_path)
    assert reloaded.verify("admin", "a-much-better-one")
    assert not reloaded.must_change("admin")


@pytest.mark.parametrize(
    ("user", "password", "why"),
    [
        ("admin", "admin", "at least 10"),
        ("admin", "short", "at least 10"),
        ("admin", "adminadmin", "must not be 'admin'"),
        ("admin", "ADMIN admin", "must not be 'admin'"),
        ("admin", " " * 12, "blank"),
        ("operator-7", "OPERATOR-7", "user name"),
        ("admin", "x" * 300, "at most"),
    ],
)
def test_password_policy_refuses(user: str, password: str, why: str) -> None:
    with pytest.raises(UserError, match=why):
        check_password_policy(user, password)


def test_password_policy_accepts_a_reasonable_password() -> None:
    check_password_policy("admin", "admin-but-longer")  # contains admin, yet more than that


def test_new_password_must_differ_and_old_must_be_right(tmp_path: Path) -> None:
    users = store(tmp_path)
    with pytest.raises(UserError, match="current password is wrong"):
        users.change_password("admin", "nope", "a-much-better-one")
    users.change_password("admin", DEFAULT_PASSWORD, "a-much-better-one")
    with pytest.raises(UserError, match="differ"):
        users.change_password("admin", "a-much-better-one", "a-much-better-one")


def test_unknown_user_never_verifies(tmp_path: Path) -> None:
    users = store(tmp_path)
    assert not users.verify("root", "admin")
    assert not users.verify("admin", "x" * 10_000)


def test_tokens_are_stored_as_digests_and_can_be_revoked(tmp_path: Path) -> None:
    users = store(tmp_path)
    token, secret = users.create_token("admin", "monitoring")
    assert secret.startswith("sp_") and len(secret) > 40
    assert secret not in (tmp_path / "users.json").read_text()
    assert users.check_token(secret) == "admin"
    assert users.check_token(secret + "x") is None
    assert users.revoke_token(token.id)
    assert users.check_token(secret) is None
    assert not users.revoke_token(token.id)


def test_a_new_password_revokes_the_users_tokens_on_disk_too(tmp_path: Path) -> None:
    users = store(tmp_path)
    _, secret = users.create_token("admin", "monitoring")
    users.change_password("admin", DEFAULT_PASSWORD, "a-much-better-secret")
    assert users.check_token(secret) is None
    assert store(tmp_path).tokens() == []  # the revocation was saved with the new hash


def test_broken_users_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "users.json").write_text("{not json")
    with pytest.raises(UserError, match="not a valid users file"):
        store(tmp_path)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_within_a_minute_lock_the_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        assert not throttle.failure("10.0.0.1")
        clock.now += 10
    assert throttle.locked_for("10.0.0.1") == 0
    assert throttle.failure("10.0.0.1")  # the fifth within 60 s
    assert throttle.locked_for("10.0.0.1") == pytest.approx(300)
    assert throttle.locked_for("10.0.0.2") == 0  # other addresses are not affected
    clock.now += 301
    assert throttle.locked_for("10.0.0.1") == 0


def test_failures_spread_over_more_than_a_minute_do_not_lock() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(10):
        assert not throttle.failure("10.0.0.1")
        clock.now += 16  # at most 4 inside any 60 s window
    assert throttle.locked_for("10.0.0.1") == 0


def test_success_clears_the_count() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        throttle.failure("a")
    throttle.success("a")
    assert not throttle.failure("a")


def test_throttle_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("securephone.store.users.MAX_TRACKED", 3)
    throttle = LoginThrottle(clock=Clock())
    for address in ("a", "b", "c", "d"):
        throttle.failure(address)
    assert list(throttle._failures) == ["b", "c", "d"]


def test_a_huge_user_name_is_counted_by_its_first_64_characters() -> None:
    """The login form takes any length: a megabyte of name must not become a megabyte of key."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock, user_max_failures=2)
    huge = "x" * 1_000_000
    for n in range(2):
        assert throttle.begin(f"10.0.0.{n}", huge + str(n)) == 0
        locked = throttle.failure(f"10.0.0.{n}", huge + str(n))
    assert locked  # both names are the same 64 characters: one user budget
    assert throttle.begin("10.9.9.9", "x" * 64) == pytest.approx(300)
    assert all(len(key) == 64 for key in throttle._user.locked_until)


def test_locks_are_bounded_and_expired_ones_go_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("securephone.store.users.MAX_TRACKED", 3)
    clock = Clock()
    throttle = LoginThrottle(clock=clock, max_failures=1, lockout=100)
    throttle.failure("old")
    clock.now += 101  # "old" has expired, but nothing looked at it since
    for address in ("a", "b"):
        throttle.failure(address)
    throttle.failure("c")  # full: the expired lock goes
    assert list(throttle._address.locked_until) == ["a", "b", "c"]
    throttle.failure("d")  # full of live locks: the oldest goes
    assert list(throttle._address.locked_until) == ["b", "c", "d"]


def test_an_attempt_is_reserved_before_it_is_checked() -> None:
    throttle = LoginThrottle(clock=Clock())
    for _ in range(5):
        assert throttle.begin("10.0.0.1", "admin") == 0  # five checks may run at once
    assert throttle.begin("10.0.0.1", "admin") > 0  # the sixth waits for them
    for n in range(4):
        assert not throttle.failure("10.0.0.1", "admin"), n
    assert throttle.failure("10.0.0.1", "admin")  # the fifth settles as a lock
    assert throttle.begin("10.0.0.1", "admin") == pytest.approx(300)


def test_a_success_gives_its_reservation_back() -> None:
    throttle = LoginThrottle(clock=Clock())
    for _ in range(5):
        assert throttle.begin("10.0.0.1", "admin") == 0
        throttle.success("10.0.0.1", "admin")
    assert throttle.begin("10.0.0.1", "admin") == 0


def test_user_budget_counts_every_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, user_max_failures=3)
    for n in range(3):
        assert throttle.begin(f"10.0.0.{n}", "admin") == 0
        locked = throttle.failure(f"10.0.0.{n}", "admin")
    assert locked
    assert throttle.begin("10.9.9.9", "admin") == pytest.approx(300)
    assert throttle.begin("10.9.9.9", "other") == 0
    clock.now += 301
    assert throttle.begin("10.9.9.9", "admin") == 0


def test_global_slowdown_after_many_failures_and_it_ends() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, global_failures=4, global_delay=2.0)
    for n in range(3):
        throttle.failure(f"10.0.0.{n}", f"u{n}")
    assert throttle.slowdown() == 0
    throttle.failure("10.0.0.9", "u9")
    assert throttle.slowdown() == 2.0
    clock.now += 61
    assert throttle.slowdown() == 0
