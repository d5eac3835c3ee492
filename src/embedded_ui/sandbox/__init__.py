"""The sandbox app: a local OAuth 2.0 provider and commerce API for the demo and the tests.

Run it with `embedded-ui sandbox`; see docs/sandbox.md.
"""

from __future__ import annotations

from embedded_ui.sandbox.app import create_sandbox_app, create_sandbox_app_from_env
from embedded_ui.sandbox.config import SandboxConfig

__all__ = ["SandboxConfig", "create_sandbox_app", "create_sandbox_app_from_env"]
