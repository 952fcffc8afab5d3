"""HeadMeter: a request head's size, however its bytes are split into reads, without parsing it."""

from __future__ import annotations

import pytest

from app.server import HeadMeter

LIMIT = 64


def head_of(size: int, line_end: bytes = b"\r\n") -> bytes:
    """A head of exactly `size` bytes, its blank line included."""
    start = b"GET / HTTP/1.1" + line_end + b"X: "
    end = line_end + line_end
    return start + b"a" * (size - len(start) - len(end)) + end


def measure(reads: list[bytes]) -> tuple[bool, HeadMeter]:
    meter = HeadMeter(LIMIT)
    return any([meter.feed(data) for data in reads]), meter


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT, LIMIT + 1])
def test_a_head_is_refused_exactly_when_it_is_over_the_limit_wherever_the_reads_split_it(
    size: int, line_end: bytes
) -> None:
    head = head_of(size, line_end)
    assert len(head) == size
    for split in range(len(head) + 1):
        refused, meter = measure([head[:split], head[split:]])
        assert refused is (size > LIMIT), f"split at {split}"
        if not refused:
            assert (meter.complete, meter.size) == (True, size)


def test_a_head_trickled_byte_by_byte_is_measured_the_same() -> None:
    head = head_of(LIMIT)
    refused, meter = measure([head[i : i + 1] for i in range(len(head))])
    assert (refused, meter.complete, meter.size) == (False, True, LIMIT)


def test_the_body_after_the_head_does_not_count() -> None:
    refused, meter = measure([head_of(40) + b"x" * 10_000, b"y" * 10_000])
    assert (refused, meter.size) == (False, 40)


def test_a_head_without_an_end_is_refused_once_past_the_limit() -> None:
    unfinished = b"GET / HTTP/1.1\r\nX: ".ljust(LIMIT, b"a")
    refused, meter = measure([unfinished])
    assert (refused, meter.complete, meter.size) == (False, False, LIMIT)
    refused, meter = measure([unfinished, b"a" * 1_000_000])
    assert (refused, meter.complete) == (True, False)
