"""Accounts on disk (SPEC §12): names, the single-master migration, identities, cookie files as users
bring them. Pure logic and real files; no browser."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from browserforge.fingerprints import FingerprintGenerator

from app.services.common.generation import bump_generation
from app.services.common.identity import AccountIdentity, read_identity, write_identity
from app.services.common.user_data import (
    DEFAULT_ACCOUNT,
    UserDataLayout,
    is_account_name,
    migrate_single_master,
)
from app.services.tiktok.accounts import AccountBook, new_identity
from app.services.tiktok.cookie_import import (
    CookieFileError,
    parse_cookie_file,
    require_cookies_for_host,
    require_session_cookie,
    same_site_family,
)

SESSION_COOKIES = ("sessionid", "sessionid_ss", "sid_tt")


@pytest.mark.parametrize("name", ["default", "alice", "a", "bob_2", "team-7", "0" * 63])
def test_valid_account_names(name: str) -> None:
    assert is_account_name(name)


@pytest.mark.parametrize("name", ["", "Alice", "-x", "_x", "a.b", "a/b", "..", "a" * 64, "ü", "a b"])
def test_invalid_account_names(name: str) -> None:
    assert not is_account_name(name)
    with pytest.raises(ValueError):
        UserDataLayout(Path("/x"), name)


def legacy(root: Path) -> None:
    (root / "master" / "Default").mkdir(parents=True)
    (root / "master" / "Default" / "Cookies").write_bytes(b"cookie db")
    (root / "master.generation").write_text("4-aaaa\n")
    (root / "master.lock").write_text("")


def test_the_single_master_becomes_the_default_account_with_its_generation(tmp_path: Path) -> None:
    legacy(tmp_path)
    assert migrate_single_master(tmp_path) is True
    layout = UserDataLayout(tmp_path)
    assert (layout.master / "Default" / "Cookies").read_bytes() == b"cookie db"
    assert layout.generation_file.read_text() == "4-aaaa\n"
    assert not (tmp_path / "master").exists() and not (tmp_path / "master.lock").exists()
    assert layout.account_names() == ["default"]
    assert migrate_single_master(tmp_path) is False


def test_an_interrupted_migration_finishes_when_run_again(tmp_path: Path) -> None:
    legacy(tmp_path)
    target = tmp_path / "accounts" / "default"
    target.mkdir(parents=True)
    # Interrupted after the marker moved, before the profile did.
    os.rename(tmp_path / "master.generation", target / "master.generation")
    assert migrate_single_master(tmp_path) is True
    assert (target / "master" / "Default" / "Cookies").is_file()
    assert (target / "master.generation").read_text() == "4-aaaa\n"


def test_an_existing_default_account_is_never_overwritten(tmp_path: Path) -> None:
    legacy(tmp_path)
    existing = tmp_path / "accounts" / "default" / "master" / "Default"
    existing.mkdir(parents=True)
    assert migrate_single_master(tmp_path) is False
    assert (tmp_path / "master" / "Default" / "Cookies").is_file()
    assert list(existing.iterdir()) == []


def test_account_names_are_folders_with_a_master(tmp_path: Path) -> None:
    for name in ("bob", "alice"):
        (tmp_path / "accounts" / name / "master").mkdir(parents=True)
    (tmp_path / "accounts" / "no-master").mkdir()
    (tmp_path / "accounts" / "Bad Name" / "master").mkdir(parents=True)
    assert UserDataLayout(tmp_path).account_names() == ["alice", "bob"]


async def test_a_post_reads_every_account_with_its_generation_at_once(tmp_path: Path) -> None:
    for name in ("bob", "alice"):
        (tmp_path / "accounts" / name / "master").mkdir(parents=True)
    layout = UserDataLayout(tmp_path)
    written = bump_generation(layout.for_account("bob"))
    book = AccountBook(layout, sample_fingerprint=lambda: None)  # type: ignore[arg-type]

    known = await book.with_generations()

    read = [(account.name, generation) for account, generation in known]
    assert read == [("alice", None), ("bob", written)]
    # The same objects the book hands out by name: a proof recorded on one is seen through the other.
    assert known[1][0] is book.account("bob")


async def test_with_no_account_yet_the_default_one_is_read(tmp_path: Path) -> None:
    book = AccountBook(UserDataLayout(tmp_path), sample_fingerprint=lambda: None)  # type: ignore[arg-type]
    assert [(account.name, generation) for account, generation in await book.with_generations()] == [
        (DEFAULT_ACCOUNT, None)
    ]


@pytest.fixture(scope="module")
def fingerprint():  # noqa: ANN201 - browserforge's Fingerprint
    return FingerprintGenerator(browser="chrome", os="linux", device="desktop").generate()


def test_an_identity_survives_its_file_unchanged(tmp_path: Path, fingerprint) -> None:  # noqa: ANN001
    identity = new_identity(fingerprint, locale="de-DE", timezone="Europe/Berlin", proxy="http://u:p@h:1")
    path = tmp_path / "identity.json"
    write_identity(path, identity, replace=False)
    stored = read_identity(path)
    assert stored == identity
    assert (
        stored is not None
        and stored.proxy is not None
        and stored.proxy.get_secret_value() == "http://u:p@h:1"
    )
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert stored.languages == ["de-DE", "de"]


def test_the_first_identity_written_wins(tmp_path: Path, fingerprint) -> None:  # noqa: ANN001
    path = tmp_path / "identity.json"
    first = write_identity(path, new_identity(fingerprint, timezone="UTC"), replace=False)
    second = write_identity(path, new_identity(fingerprint, timezone="Asia/Tokyo"), replace=False)
    assert second == first and second.timezone == "UTC"
    assert AccountIdentity.from_json(path.read_text()).timezone == "UTC"


def test_summary_redacts_the_proxy(fingerprint) -> None:  # noqa: ANN001
    identity = new_identity(fingerprint, proxy="socks5://user:secret@10.9.8.7:1080")
    assert identity.redacted_proxy == "socks5://***:***@10.9.8.7:1080"
    assert "secret" not in json.dumps(identity.summary("UA"))


def test_playwright_storage_state_is_read() -> None:
    state = {
        "cookies": [
            {
                "name": "sessionid",
                "value": "s",
                "domain": ".tiktok.com",
                "path": "/",
                "expires": -1,
                "httpOnly": True,
                "secure": True,
                "sameSite": "None",
            },
            {
                "name": "ttwid",
                "value": "g",
                "domain": ".tiktok.com",
                "path": "/",
                "expires": 2e9,
                "httpOnly": True,
                "secure": True,
                "sameSite": "Lax",
            },
        ],
        "origins": [],
    }
    cookies = parse_cookie_file(json.dumps(state))
    assert [(c["name"], c.get("expires")) for c in cookies] == [("sessionid", None), ("ttwid", 2e9)]
    assert cookies[0]["sameSite"] == "None"


def test_a_file_whose_session_cookies_all_expired_is_refused_naming_the_date() -> None:
    expired = [{"name": "sessionid", "value": "s", "domain": ".tiktok.com", "expires": 1_690_000_000.0}]
    with pytest.raises(CookieFileError, match="expired.*2023-07-22"):
        require_session_cookie(expired, SESSION_COOKIES, "www.tiktok.com", now=time.time())
    alive = expired + [{"name": "sid_tt", "value": "t", "domain": ".tiktok.com"}]
    require_session_cookie(alive, SESSION_COOKIES, "www.tiktok.com")


def test_no_cookie_for_the_host_names_the_files_domains_and_the_mapping() -> None:
    cookies = [{"name": "sessionid", "value": "s", "domain": ".tiktok.com"}]
    with pytest.raises(CookieFileError) as refused:
        require_cookies_for_host(cookies, [], "127.0.0.1")
    assert "tiktok.com" in str(refused.value) and "--domain-map .tiktok.com=127.0.0.1" in str(refused.value)


@pytest.mark.parametrize(
    ("domain", "host", "same"),
    [
        (".tiktok.com", "www.tiktok.com", True),
        ("m.tiktok.com", "www.tiktok.com", True),
        ("www.tiktok.com", "www.tiktok.com", True),
        ("tiktokv.com", "www.tiktok.com", False),
        ("evil-tiktok.com", "www.tiktok.com", False),
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.2", "127.0.0.1", False),
    ],
)
def test_cookies_of_tiktoks_site(domain: str, host: str, same: bool) -> None:
    assert same_site_family(domain, host) is same
