from __future__ import annotations

import embedded_ui


def test_public_surface_is_pinned():
    assert embedded_ui.__all__ == ["Settings", "__version__", "create_app"]
    public = sorted(name for name in embedded_ui.__all__ if not name.startswith("__"))
    assert all(callable(getattr(embedded_ui, name)) for name in public)
