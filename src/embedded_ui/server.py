"""Run the app under Granian (chosen over Uvicorn by measurement; see docs/benchmarks.md)."""

from __future__ import annotations

from granian.constants import Interfaces
from granian.server import Server

from embedded_ui.settings import Settings


def run_server(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    # Granian imports the factory in each worker, which reads the same environment again;
    # the settings object here only supplies the bind address and process count.
    Server(
        "embedded_ui.app:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        log_access=False,
    ).serve()
