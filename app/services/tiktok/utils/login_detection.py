"""The seed's path for login detection; the code lives in `app.services.tiktok.login.login_detection`."""

from app.services.tiktok.login.login_detection import *  # noqa: F403
