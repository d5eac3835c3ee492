"""The two objects every sandbox handler may ask for, provided from the app's state."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from embedded_ui.sandbox.oauth import SandboxAuthorizationServer
from embedded_ui.sandbox.store import SandboxState

Sandbox = NamedDependency[SandboxState]
OAuthServer = NamedDependency[SandboxAuthorizationServer]


async def _provide_sandbox(state: State) -> SandboxState:
    sandbox: SandboxState = state.sandbox
    return sandbox


async def _provide_oauth(state: State) -> SandboxAuthorizationServer:
    oauth: SandboxAuthorizationServer = state.oauth
    return oauth


dependencies = {"sandbox": Provide(_provide_sandbox), "oauth": Provide(_provide_oauth)}
