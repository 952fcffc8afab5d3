"""The live view's input (SPEC §13): client messages → the CDP commands that make the page feel them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.schemas.live_view import KeyInput, MouseInput, SwitchTab, TextInput, WheelInput, client_message
from app.services.common.live_view import jpeg_size
from app.services.common.view_input import key_commands, mouse_commands, text_commands, wheel_commands


def key(kind: str, key: str, code: str = "", *modifiers: str, repeat: bool = False) -> KeyInput:
    return KeyInput.model_validate(
        {"type": kind, "key": key, "code": code, "modifiers": list(modifiers), "repeat": repeat}
    )


def sent(commands: list[tuple[str, dict]]) -> list[dict]:
    """The parameters of each command, which must all be key events."""
    assert {method for method, _ in commands} == {"Input.dispatchKeyEvent"}
    return [params for _, params in commands]


# --- keys -------------------------------------------------------------------------------------------


def test_a_letter_is_one_key_down_that_types_it() -> None:
    assert sent(key_commands(key("keydown", "a", "KeyA"))) == [
        {
            "type": "keyDown",
            "key": "a",
            "code": "KeyA",
            "windowsVirtualKeyCode": 65,
            "modifiers": 0,
            "location": 0,
            "isKeypad": False,
            "text": "a",
            "unmodifiedText": "a",
            "autoRepeat": False,
        }
    ]


def test_shift_and_a_letter_types_the_capital() -> None:
    [params] = sent(key_commands(key("keydown", "A", "KeyA", "shift")))
    assert (params["type"], params["text"], params["modifiers"], params["windowsVirtualKeyCode"]) == (
        "keyDown",
        "A",
        8,
        65,
    )


def test_enter_types_a_carriage_return_so_a_form_submits() -> None:
    [params] = sent(key_commands(key("keydown", "Enter", "Enter")))
    assert (params["type"], params["text"], params["windowsVirtualKeyCode"]) == ("keyDown", "\r", 13)


@pytest.mark.parametrize(
    ("name", "code", "virtual_key"),
    [
        ("Backspace", "Backspace", 8),
        ("Tab", "Tab", 9),
        ("Escape", "Escape", 27),
        ("Delete", "Delete", 46),
        ("Home", "Home", 36),
        ("End", "End", 35),
        ("ArrowLeft", "ArrowLeft", 37),
        ("ArrowUp", "ArrowUp", 38),
        ("ArrowRight", "ArrowRight", 39),
        ("ArrowDown", "ArrowDown", 40),
        ("PageDown", "PageDown", 34),
        ("F5", "F5", 116),
    ],
)
def test_keys_that_type_nothing_are_raw_key_downs_with_their_key_code(
    name: str, code: str, virtual_key: int
) -> None:
    [params] = sent(key_commands(key("keydown", name, code)))
    assert params["type"] == "rawKeyDown" and "text" not in params
    assert params["windowsVirtualKeyCode"] == virtual_key


@pytest.mark.parametrize(
    ("modifiers", "mask"), [(("ctrl",), 2), (("meta",), 4), (("alt",), 1), (("ctrl", "shift"), 10)]
)
def test_a_letter_with_ctrl_meta_or_alt_is_a_shortcut_and_types_nothing(
    modifiers: tuple[str, ...], mask: int
) -> None:
    [params] = sent(key_commands(key("keydown", "a", "KeyA", *modifiers)))
    assert params["type"] == "rawKeyDown" and "text" not in params
    assert (params["modifiers"], params["windowsVirtualKeyCode"]) == (mask, 65)


def test_a_macs_option_letter_types_its_character() -> None:
    [params] = sent(key_commands(key("keydown", "å", "KeyA", "alt")))
    assert (params["type"], params["text"]) == ("keyDown", "å")


def test_another_layouts_character_is_typed_with_the_physical_keys_code() -> None:
    [params] = sent(key_commands(key("keydown", "é", "Digit2")))
    assert (params["text"], params["windowsVirtualKeyCode"]) == ("é", 50)


def test_a_held_key_repeats() -> None:
    [params] = sent(key_commands(key("keydown", "b", "KeyB", repeat=True)))
    assert params["autoRepeat"] is True


def test_a_key_up_types_nothing() -> None:
    assert sent(key_commands(key("keyup", "a", "KeyA", "shift"))) == [
        {
            "type": "keyUp",
            "key": "a",
            "code": "KeyA",
            "windowsVirtualKeyCode": 65,
            "modifiers": 8,
            "location": 0,
            "isKeypad": False,
        }
    ]


# --- mouse, wheel, text -------------------------------------------------------------------------------


def mouse(kind: str, **fields: object) -> MouseInput:
    return MouseInput.model_validate({"type": kind, "x": 10.5, "y": 20, **fields})


def test_a_press_a_drag_and_a_release_tell_the_page_which_button_is_held() -> None:
    pressed, held = mouse_commands(mouse("mousedown", clickCount=1), 0)
    moved, held_moving = mouse_commands(mouse("mousemove"), held)
    released, after = mouse_commands(mouse("mouseup"), held_moving)
    assert pressed == [
        (
            "Input.dispatchMouseEvent",
            {
                "type": "mousePressed",
                "button": "left",
                "buttons": 1,
                "clickCount": 1,
                "x": 10.5,
                "y": 20,
                "modifiers": 0,
            },
        )
    ]
    assert [(p["type"], p["button"], p["buttons"]) for _, p in moved] == [("mouseMoved", "left", 1)]
    assert [(p["type"], p["button"], p["buttons"]) for _, p in released] == [("mouseReleased", "left", 0)]
    assert (held, held_moving, after) == (1, 1, 0)


def test_a_move_with_no_button_held_is_a_hover() -> None:
    moved, held = mouse_commands(mouse("mousemove"), 0)
    assert [(p["type"], p["button"], p["buttons"]) for _, p in moved] == [("mouseMoved", "none", 0)]
    assert held == 0


def test_the_second_press_of_a_double_click_counts_two() -> None:
    pressed, _ = mouse_commands(mouse("mousedown", clickCount=2, button="left"), 0)
    assert pressed[0][1]["clickCount"] == 2


def test_a_click_message_is_a_press_and_a_release() -> None:
    commands, held = mouse_commands(mouse("click", button="right", modifiers=["shift"]), 0)
    assert [(p["type"], p["button"], p["buttons"], p["clickCount"], p["modifiers"]) for _, p in commands] == [
        ("mousePressed", "right", 2, 1, 8),
        ("mouseReleased", "right", 0, 1, 8),
    ]
    assert held == 0


def test_a_dblclick_message_is_two_clicks_the_second_counting_two() -> None:
    commands, _ = mouse_commands(mouse("dblclick"), 0)
    assert [(p["type"], p["clickCount"]) for _, p in commands] == [
        ("mousePressed", 1),
        ("mouseReleased", 1),
        ("mousePressed", 2),
        ("mouseReleased", 2),
    ]


def test_the_wheel_scrolls_by_its_deltas_where_the_pointer_is() -> None:
    wheel = WheelInput.model_validate({"type": "wheel", "x": 5, "y": 6, "deltaX": -3, "deltaY": 120})
    assert wheel_commands(wheel) == [
        (
            "Input.dispatchMouseEvent",
            {"type": "mouseWheel", "x": 5, "y": 6, "deltaX": -3, "deltaY": 120, "modifiers": 0},
        )
    ]


def test_pasted_text_is_inserted_and_nothing_is_sent_for_none() -> None:
    assert text_commands("line one\nline two") == [("Input.insertText", {"text": "line one\nline two"})]
    assert text_commands("") == []


# --- the messages themselves --------------------------------------------------------------------------


def test_messages_are_told_apart_by_their_type() -> None:
    assert isinstance(client_message.validate_json('{"type": "switch_tab", "index": 1}'), SwitchTab)
    assert isinstance(client_message.validate_json('{"type": "paste", "text": "x"}'), TextInput)
    assert isinstance(client_message.validate_json('{"type": "keyup", "key": "a"}'), KeyInput)


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "teleport"}',
        '{"type": "mousedown", "x": 1, "y": 2, "clickcount": 1}',  # a typo is refused, not ignored
        '{"type": "keydown", "key": ""}',
        '{"type": "mousedown", "x": 1, "y": 2, "modifiers": ["hyper"]}',
        '{"type": "switch_tab", "index": -1}',
        '{"type": "size", "width": 0, "height": 480}',
        "[]",
    ],
)
def test_a_message_outside_the_vocabulary_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        client_message.validate_json(text)


# --- frames -----------------------------------------------------------------------------------------


def jpeg_header(width: int, height: int) -> bytes:
    """The start of a baseline JPEG: SOI, a JFIF APP0 segment, then the frame header (SOF0)."""
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0\x00\x11\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big") + b"\x03" + bytes(9)
    return b"\xff\xd8" + app0 + sof0


def test_a_frames_size_is_read_from_its_jpeg_header() -> None:
    assert jpeg_size(jpeg_header(1256, 633)) == (1256, 633)


def test_what_is_not_a_jpeg_has_no_size() -> None:
    assert jpeg_size(b"\x89PNG\r\n\x1a\n" + bytes(32)) is None
    assert jpeg_size(b"\xff\xd8") is None
