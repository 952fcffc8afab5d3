"""The app, built at import: `uvicorn app.asgi:app`, `fastapi run app/asgi.py`.

These launchers serve it with their own HTTP settings: `python -m app` (`make run`) adds the service's
limits on request heads, WebSocket settings and shutdown order (`app.server`).
"""

from app.main import create_app
from app.server import load_service_settings

app = create_app(load_service_settings())
