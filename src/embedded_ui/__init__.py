"""embedded-ui: self-hostable embedded integrations, compatible with Alloy Embedded's API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Settings", "__version__", "create_app"]

if TYPE_CHECKING:
    from embedded_ui.app import create_app
    from embedded_ui.settings import Settings


def __getattr__(name: str) -> Any:
    # Lazy, so `import embedded_ui.store` does not pull in the web stack (and no cycles).
    if name == "create_app":
        from embedded_ui.app import create_app

        return create_app
    if name == "Settings":
        from embedded_ui.settings import Settings

        return Settings
    raise AttributeError(name)
