"""A person's input in the live view, as the CDP `Input.*` commands that make a page feel it (SPEC §13).

Pure: each function turns one client message (app/schemas/live_view.py) into command parameters.
Keys are sent the way Playwright's keyboard sends them: a key that types a character is one
`keyDown` with its `text` (Chromium fires keydown, keypress and input, and a page that cancels the
keydown gets no character, as with a real keyboard); other keys (Enter aside, which types "\r" so a
form submits) are a `rawKeyDown` that only fires keydown and its default action (Backspace deletes,
Tab moves the focus, Ctrl+A selects all). Text that comes without keys (a paste, an input method) is
`Input.insertText`.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import Any

from app.schemas.live_view import KeyInput, Modifier, MouseInput, WheelInput

CdpCommand = tuple[str, dict[str, Any]]

MODIFIER_BITS: dict[Modifier, int] = {"alt": 1, "ctrl": 2, "meta": 4, "shift": 8}
BUTTON_BITS = {"none": 0, "left": 1, "right": 2, "middle": 4, "back": 8, "forward": 16}

# Windows virtual key codes (what Chromium's key handling goes by), for keys named by KeyboardEvent.key.
_NAMED_KEYS = {
    "Backspace": 8,
    "Tab": 9,
    "Enter": 13,
    "Shift": 16,
    "Control": 17,
    "Alt": 18,
    "Pause": 19,
    "CapsLock": 20,
    "Escape": 27,
    " ": 32,
    "PageUp": 33,
    "PageDown": 34,
    "End": 35,
    "Home": 36,
    "ArrowLeft": 37,
    "ArrowUp": 38,
    "ArrowRight": 39,
    "ArrowDown": 40,
    "Insert": 45,
    "Delete": 46,
    "Meta": 91,
    "ContextMenu": 93,
    "NumLock": 144,
    "ScrollLock": 145,
    **{f"F{n}": 111 + n for n in range(1, 25)},
}
# …and by KeyboardEvent.code, the physical key, for everything that types: Ctrl+A is key 65 whatever
# the person's layout prints on it.
_CODES = {
    **{f"Key{letter}": ord(letter) for letter in string.ascii_uppercase},
    **{f"Digit{n}": 48 + n for n in range(10)},
    **{f"Numpad{n}": 96 + n for n in range(10)},
    "Space": 32,
    "NumpadMultiply": 106,
    "NumpadAdd": 107,
    "NumpadSubtract": 109,
    "NumpadDecimal": 110,
    "NumpadDivide": 111,
    "NumpadEnter": 13,
    "Semicolon": 186,
    "Equal": 187,
    "Comma": 188,
    "Minus": 189,
    "Period": 190,
    "Slash": 191,
    "Backquote": 192,
    "BracketLeft": 219,
    "Backslash": 220,
    "BracketRight": 221,
    "Quote": 222,
    "IntlBackslash": 226,
}
_KEYPAD = 3  # KeyboardEvent.location of the numeric keypad


def modifier_mask(modifiers: Iterable[Modifier]) -> int:
    mask = 0
    for modifier in modifiers:
        mask |= MODIFIER_BITS[modifier]
    return mask


def key_code(key: str, code: str) -> int:
    """The Windows virtual key code Chromium expects for a DOM key/code pair; 0 when there is none."""
    if key in _NAMED_KEYS:
        return _NAMED_KEYS[key]
    if code in _CODES:
        return _CODES[code]
    if len(key) == 1 and key.upper() in string.ascii_uppercase + string.digits:
        return ord(key.upper())
    return 0


def typed_text(message: KeyInput) -> str:
    """What the key types, if anything: one printable character, or "\r" for Enter."""
    if message.key == "Enter":
        return "\r"
    if len(message.key) != 1 or not message.key.isprintable():
        return ""
    held = set(message.modifiers)
    if held & {"ctrl", "meta"}:
        return ""  # a shortcut
    if "alt" in held and message.key.isascii():
        return ""  # Alt+letter is a shortcut too; Option+letter on a Mac gives a non-ASCII character
    return message.key


def key_commands(message: KeyInput) -> list[CdpCommand]:
    params: dict[str, Any] = {
        "key": message.key,
        "code": message.code,
        "windowsVirtualKeyCode": key_code(message.key, message.code),
        "modifiers": modifier_mask(message.modifiers),
        "location": message.location,
        "isKeypad": message.location == _KEYPAD,
    }
    if message.type == "keyup":
        return [("Input.dispatchKeyEvent", {"type": "keyUp", **params})]
    text = typed_text(message)
    if text:
        params |= {"type": "keyDown", "text": text, "unmodifiedText": text}
    else:
        params["type"] = "rawKeyDown"
    params["autoRepeat"] = message.repeat
    return [("Input.dispatchKeyEvent", params)]


def mouse_commands(message: MouseInput, held: int) -> tuple[list[CdpCommand], int]:
    """The commands for one mouse message, and the buttons held once they ran (for drags)."""
    point = {"x": message.x, "y": message.y, "modifiers": modifier_mask(message.modifiers)}
    bit = BUTTON_BITS[message.button]

    def event(kind: str, button: str, buttons: int, clicks: int = 0) -> CdpCommand:
        params = {
            "type": kind,
            "button": button,
            "buttons": buttons,
            "clickCount": clicks,
            **point,
        }
        return ("Input.dispatchMouseEvent", params)

    if message.type == "mousemove":
        # A move while a button is held is a drag: the page must see which button.
        dragging = next((name for name, b in BUTTON_BITS.items() if b and held & b), "none")
        return [event("mouseMoved", dragging, held)], held
    if message.type == "mousedown":
        held |= bit
        return [event("mousePressed", message.button, held, message.click_count)], held
    if message.type == "mouseup":
        held &= ~bit
        return [event("mouseReleased", message.button, held, message.click_count)], held
    clicks = [1, 2] if message.type == "dblclick" else [1]
    commands = []
    for count in clicks:
        commands.append(event("mousePressed", message.button, held | bit, count))
        commands.append(event("mouseReleased", message.button, held, count))
    return commands, held


def wheel_commands(message: WheelInput) -> list[CdpCommand]:
    params = {
        "type": "mouseWheel",
        "x": message.x,
        "y": message.y,
        "deltaX": message.delta_x,
        "deltaY": message.delta_y,
        "modifiers": modifier_mask(message.modifiers),
    }
    return [("Input.dispatchMouseEvent", params)]


def text_commands(text: str) -> list[CdpCommand]:
    return [("Input.insertText", {"text": text})] if text else []
