"""`python -m embedded_ui` is the same as the `embedded-ui` command."""

from __future__ import annotations

from embedded_ui.cli import main

main()
