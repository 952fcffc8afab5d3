"""The live view's WebSocket messages (SPEC §13), both ways, as JSON text.

Server → client: `hello` once, then `state` and `tabs` whenever they change, a `frame` before every
picture (the picture itself follows as one binary message, a JPEG), `error` for a refused or
malformed message, and `ended` (then a 1000 close) when the session ends, or `revoked` (then a 1008
close) when the link the view was opened with expires or is revoked.

Client → server: `size` (the largest picture worth sending, in device pixels), `switch_tab`, and,
with an interactive link only, mouse, wheel, keyboard and text input. Coordinates are CSS pixels of
the page's viewport; names follow the DOM's (`clickCount`, `deltaX`, `key`, `code`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

Modifier = Literal["alt", "ctrl", "meta", "shift"]
MouseButton = Literal["none", "left", "middle", "right", "back", "forward"]
# Far outside any viewport, still a plain number: CDP clips what lands outside the page.
_COORDINATE = Field(ge=-100_000, le=100_000)


class _ClientMessage(BaseModel):
    # A typo in a field is an error the client is told about, never silently ignored.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class WindowSize(_ClientMessage):
    """The picture's largest useful size: the element's size on the person's screen, in device pixels."""

    type: Literal["size"]
    width: int = Field(ge=16, le=8192)
    height: int = Field(ge=16, le=8192)


class SwitchTab(_ClientMessage):
    type: Literal["switch_tab"]
    index: int = Field(ge=0)


class MouseInput(_ClientMessage):
    type: Literal["mousemove", "mousedown", "mouseup", "click", "dblclick"]
    x: float = _COORDINATE
    y: float = _COORDINATE
    button: MouseButton = "left"
    click_count: int = Field(default=1, ge=0, le=3)
    modifiers: list[Modifier] = []


class WheelInput(_ClientMessage):
    type: Literal["wheel"]
    x: float = _COORDINATE
    y: float = _COORDINATE
    delta_x: float = Field(default=0, ge=-100_000, le=100_000)
    delta_y: float = Field(default=0, ge=-100_000, le=100_000)
    modifiers: list[Modifier] = []


class KeyInput(_ClientMessage):
    type: Literal["keydown", "keyup"]
    key: str = Field(min_length=1, max_length=32, description="KeyboardEvent.key: 'a', 'Enter', 'ArrowUp'")
    code: str = Field(default="", max_length=32, description="KeyboardEvent.code: 'KeyA', 'Enter'")
    modifiers: list[Modifier] = []
    repeat: bool = False
    location: int = Field(default=0, ge=0, le=3)


class TextInput(_ClientMessage):
    """Text without keys: what the person pasted, or what an input method composed."""

    type: Literal["paste", "text"]
    text: str = Field(max_length=100_000)


InputMessage = MouseInput | WheelInput | KeyInput | TextInput
ClientMessage = Annotated[
    WindowSize | SwitchTab | MouseInput | WheelInput | KeyInput | TextInput, Field(discriminator="type")
]
client_message: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class Hello(BaseModel):
    """What this connection may do: sent once, first."""

    type: Literal["hello"] = "hello"
    session_id: str
    interactive: bool


class LoginState(BaseModel):
    state: str
    method: str


class ViewState(BaseModel):
    """The session as the person sees it in the view's header."""

    type: Literal["state"] = "state"
    session_id: str
    state: str
    account: str | None = None
    login: LoginState
    expires_at: datetime
    end_reason: str | None = None


class Size(BaseModel):
    width: float
    height: float


class Scroll(BaseModel):
    x: float
    y: float


class FrameInfo(BaseModel):
    """Sent just before each picture: its size, and the page viewport it shows (CSS pixels)."""

    type: Literal["frame"] = "frame"
    width: int
    height: int
    viewport: Size
    scroll: Scroll
    page_scale_factor: float = 1


class Tab(BaseModel):
    index: int
    title: str
    url: str
    active: bool


class Tabs(BaseModel):
    type: Literal["tabs"] = "tabs"
    tabs: list[Tab]


class Ended(BaseModel):
    type: Literal["ended"] = "ended"
    reason: str | None


class Revoked(BaseModel):
    type: Literal["revoked"] = "revoked"
    message: str = "this view link was revoked or has expired"


class ErrorMessage(BaseModel):
    type: Literal["error"] = "error"
    message: str
