"""The master's generation marker: missing, bumped, and replaced whole while others read it."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from app.services.common.generation import bump_generation, read_generation
from app.services.common.user_data import UserDataLayout

MARKER = re.compile(r"^(\d+)-[0-9a-f]{16}$")


def test_a_master_that_was_never_bumped_has_no_generation(tmp_path: Path) -> None:
    assert read_generation(UserDataLayout(tmp_path)) is None
    assert read_generation(UserDataLayout(tmp_path / "not-created-yet")) is None


def test_a_bump_is_what_the_next_read_returns(tmp_path: Path) -> None:
    layout = UserDataLayout(tmp_path)
    marker = bump_generation(layout)
    assert read_generation(layout) == marker
    assert layout.generation_file.read_text() == marker + "\n"


def test_every_bump_gives_a_new_marker_with_a_growing_counter(tmp_path: Path) -> None:
    layout = UserDataLayout(tmp_path)
    markers = [bump_generation(layout) for _ in range(20)]
    assert len(set(markers)) == 20
    assert [int(MARKER.match(marker).group(1)) for marker in markers] == list(range(1, 21))


def test_a_foreign_marker_is_replaced_by_a_counted_one(tmp_path: Path) -> None:
    layout = UserDataLayout(tmp_path)
    layout.generation_file.parent.mkdir(parents=True)
    layout.generation_file.write_text("written-by-hand\n")
    assert read_generation(layout) == "written-by-hand"
    assert bump_generation(layout).startswith("1-")


def test_bumping_creates_a_missing_user_data_directory(tmp_path: Path) -> None:
    layout = UserDataLayout(tmp_path / "fresh")
    marker = bump_generation(layout)
    assert read_generation(layout) == marker


def test_readers_never_see_a_partial_marker_while_it_is_bumped(tmp_path: Path) -> None:
    layout = UserDataLayout(tmp_path)
    written = {bump_generation(layout)}
    seen: list[str | None] = []
    done = threading.Event()

    def read_until_done() -> None:
        while not done.is_set():
            seen.append(read_generation(layout))

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for _ in range(300):
            written.add(bump_generation(layout))
    finally:
        done.set()
        reader.join()
    # An in-place rewrite would show an empty or cut file (None, or a marker that was never written).
    assert seen, "the reader never ran"
    assert set(seen) <= written
    folder = layout.generation_file.parent
    assert not [path.name for path in folder.iterdir() if path.name != "master.generation"]
