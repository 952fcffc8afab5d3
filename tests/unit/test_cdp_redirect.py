"""`redirect_downloads`: the one kind of client message the CDP relay changes (SPEC §11)."""

from __future__ import annotations

import json

import pytest

from app.services.common.cdp_relay import redirect_downloads

SESSION_FOLDER = "/session/downloads"
CLIENT_FOLDER = "/home/client/playwright-artifacts-XyZ"


def command(method: str, **params: object) -> str:
    return json.dumps({"id": 7, "method": method, "params": params})


@pytest.mark.parametrize("method", ["Browser.setDownloadBehavior", "Page.setDownloadBehavior"])
def test_an_allow_command_naming_another_folder_gets_the_sessions_folder(method: str) -> None:
    sent = command(method, behavior="allow", downloadPath=CLIENT_FOLDER)
    rewritten = redirect_downloads(sent, SESSION_FOLDER)
    assert isinstance(rewritten, str)
    assert json.loads(rewritten) == {
        "id": 7,
        "method": method,
        "params": {"behavior": "allow", "downloadPath": SESSION_FOLDER},
    }


def test_playwrights_attach_command_keeps_everything_but_its_folder() -> None:
    # What Playwright's connect_over_cdp sends on attach (allowAndName, its own artifacts folder).
    sent = command(
        "Browser.setDownloadBehavior",
        behavior="allowAndName",
        browserContextId="CTX-1",
        downloadPath=CLIENT_FOLDER,
        eventsEnabled=True,
    )
    params = json.loads(redirect_downloads(sent, SESSION_FOLDER))["params"]
    assert params["downloadPath"] == SESSION_FOLDER
    assert params["browserContextId"] == "CTX-1" and params["eventsEnabled"] is True


def test_an_allow_command_without_a_folder_gets_the_sessions_folder() -> None:
    sent = command("Browser.setDownloadBehavior", behavior="allow")
    assert json.loads(redirect_downloads(sent, SESSION_FOLDER))["params"]["downloadPath"] == SESSION_FOLDER


def test_a_binary_message_stays_binary() -> None:
    sent = command("Page.setDownloadBehavior", behavior="allow", downloadPath=CLIENT_FOLDER).encode()
    rewritten = redirect_downloads(sent, SESSION_FOLDER)
    assert isinstance(rewritten, bytes)
    assert json.loads(rewritten)["params"] == {"behavior": "allow", "downloadPath": SESSION_FOLDER}


@pytest.mark.parametrize("behavior", ["deny", "default"])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["text", "binary"])
def test_deny_and_default_are_passed_on_untouched(behavior: str, as_bytes: bool) -> None:
    text = command("Browser.setDownloadBehavior", behavior=behavior, downloadPath=CLIENT_FOLDER)
    sent = text.encode() if as_bytes else text
    assert redirect_downloads(sent, SESSION_FOLDER) is sent


@pytest.mark.parametrize(
    "sent",
    [
        command("Runtime.evaluate", expression="1 + 1"),
        command("Page.navigate", url="https://www.tiktok.com/"),
        command("Browser.getVersion").encode(),
        "not json at all",
        b"\x00\x01binary",
    ],
)
def test_other_messages_are_returned_as_the_same_object(sent: str | bytes) -> None:
    assert redirect_downloads(sent, SESSION_FOLDER) is sent


@pytest.mark.parametrize(
    "sent",
    [
        # A parameter that merely mentions the command, with a behavior and a path of its own.
        command(
            "Runtime.evaluate",
            expression="send('Browser.setDownloadBehavior')",
            behavior="allow",
            downloadPath=CLIENT_FOLDER,
        ),
        command("Runtime.evaluate", expression='{"method": "Page.setDownloadBehavior", "params": {}}'),
        # Not an object: an array of commands is not something the relay rewrites.
        json.dumps([{"method": "Browser.setDownloadBehavior", "params": {"behavior": "allow"}}]),
        # Text that looks like the command but is not JSON.
        '{"method": "Browser.setDownloadBehavior", "params": {"behavior": "allow"',
        # params that are not an object.
        json.dumps({"id": 1, "method": "Browser.setDownloadBehavior", "params": "allow"}),
    ],
)
def test_a_message_that_merely_contains_the_command_name_is_not_rewritten(sent: str) -> None:
    assert redirect_downloads(sent, SESSION_FOLDER) is sent
