"""What the log filter blanks: secrets by their shape, and raw only when long enough to be unmistakable."""

from __future__ import annotations

from pydantic import SecretStr

from app.core.redaction import log_secrets, redact_text
from tests.support.harness import settings_for_test


def test_a_proxy_without_credentials_hides_nothing() -> None:
    # Its URL is no secret: blanking it as raw text blanked the TikTok URL on the same host.
    settings = settings_for_test(PROXY="http://127.0.0.1:812", TIKTOK_URL="http://127.0.0.1:8123/")
    assert log_secrets(settings) == ()
    assert redact_text("tiktok_url=http://127.0.0.1:8123/", log_secrets(settings)) == (
        "tiktok_url=http://127.0.0.1:8123/"
    )


def test_the_passwords_of_proxy_and_redis_are_secrets_as_written_and_decoded() -> None:
    settings = settings_for_test(
        API_KEYS=["client-key-0123456789"],
        PROXY="http://agent:pr0xy%40pass@proxy.example:3128",
        REDIS_URL="redis://:redis-pass-123@redis.example:6379/0",
    )
    assert set(log_secrets(settings)) == {
        "client-key-0123456789",
        "pr0xy%40pass",
        "pr0xy@pass",
        "redis-pass-123",
    }


def test_short_secrets_are_not_searched_for_as_raw_text() -> None:
    assert redact_text("port 8123 on http://127.0.0.1:8123/", secrets=("8123", "127.0.0")) == (
        "port 8123 on http://127.0.0.1:8123/"
    )


def test_a_short_password_is_still_blanked_inside_a_url_and_as_a_parameter() -> None:
    text = "proxy http://agent:pw@proxy.example:3128 refused; password=pw"
    assert (
        redact_text(text, secrets=("pw",)) == "proxy http://***:***@proxy.example:3128 refused; password=***"
    )


def test_a_quoted_password_is_blanked_whatever_its_length() -> None:
    driver_error = "launch failed: proxy: { server: 'http://p:1', username: 'agent', password: 'pw' }"
    assert redact_text(driver_error) == (
        "launch failed: proxy: { server: 'http://p:1', username: 'agent', password: '***' }"
    )
    assert redact_text('{"password": "x\\"y", "user": "agent"}') == '{"password": "***", "user": "agent"}'


def test_a_long_secret_is_blanked_anywhere() -> None:
    assert (
        redact_text("auth failed for s3cret-redis-pw", secrets=("s3cret-redis-pw",)) == "auth failed for ***"
    )


def test_secrets_of_settings_without_any_are_empty() -> None:
    assert log_secrets(settings_for_test()) == ()


def test_an_api_key_shorter_than_eight_characters_is_not_searched_for_as_raw_text() -> None:
    settings = settings_for_test(API_KEYS=[SecretStr("k"), SecretStr("a-long-enough-key")])
    assert log_secrets(settings) == ("a-long-enough-key",)
