"""The baseline: a bare Litestar app with one tiny JSON route, nothing else.

It is served by the same ASGI server and worker count as the service in the same run, so the
ratio between the two isolates what the service's own code costs per request.
"""

from __future__ import annotations

from litestar import Litestar, get


@get("/hello", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"message": "hello"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[hello], debug=False)


app = create_app()
