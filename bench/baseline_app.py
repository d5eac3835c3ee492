"""The baseline: a bare Litestar app with tiny JSON routes, nothing else.

It is served by the same ASGI server and worker count as the service in the same run, so the
ratio between the two isolates what the service's own code costs per request.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get, post


@get("/hello", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"message": "hello"}


@post("/echo", status_code=202, sync_to_thread=False)
def echo(data: dict[str, Any]) -> dict[str, Any]:
    """The least a JSON POST costs: parse the body, answer it (bench/engine.py's baseline)."""
    return data


def create_app() -> Litestar:
    return Litestar(route_handlers=[hello, echo], debug=False)


app = create_app()
