"""Which databases a tenant's `database` blocks may reach: global PostgreSQL hosts (or the
networks EMBEDDED_UI_OUTBOUND_ALLOW lists), and SQLite files only in development or inside
EMBEDDED_UI_DESTINATION_SQLITE_DIR."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedded_ui.engine.destinations import check_reachable, normalise_url
from embedded_ui.errors import InvalidRequest
from embedded_ui.settings import Settings

PRODUCTION = {
    "EMBEDDED_UI_MODE": "production",
    "EMBEDDED_UI_SIGNING_KEYS": "k1:" + "A" * 43,
    "EMBEDDED_UI_VAULT_KEYS": "v1:" + "B" * 43,
}


async def refusal(url: str, **env: str) -> str | None:
    try:
        await check_reachable(normalise_url(url), Settings.from_env(env))
    except InvalidRequest as exc:
        return exc.message
    return None


async def test_global_postgres_hosts_pass_and_internal_ones_do_not() -> None:
    assert await refusal("postgresql://u:p@93.184.216.34:5432/db") is None
    assert "loopback" in str(await refusal("postgresql://u:p@127.0.0.1/db"))
    assert "private" in str(await refusal("postgresql://u:p@192.168.1.20/db"))
    assert "means 127.0.0.1" in str(await refusal("postgresql://u:p@2130706433/db"))


async def test_the_outbound_allow_list_lets_chosen_networks_through() -> None:
    allowed = {"EMBEDDED_UI_OUTBOUND_ALLOW": "127.0.0.0/8"}
    assert await refusal("postgresql://u:p@127.0.0.1/db", **allowed) is None
    assert await refusal("postgresql://u:p@10.1.2.3/db", **allowed) is not None


async def test_sqlite_files_anywhere_only_in_development(tmp_path: Path) -> None:
    inside = f"sqlite:///{tmp_path / 'ok.db'}"
    assert await refusal(inside) is None
    assert "off outside development" in str(await refusal(inside, **PRODUCTION))
    confined = {**PRODUCTION, "EMBEDDED_UI_DESTINATION_SQLITE_DIR": str(tmp_path)}
    assert await refusal(inside, **confined) is None
    escape = f"sqlite:///{tmp_path / '..' / 'elsewhere.db'}"
    assert "must be files in" in str(await refusal(escape, **confined))
    assert "must be files in" in str(await refusal("sqlite:////etc/passwd.db", **confined))


@pytest.mark.parametrize("url", ["postgresql://u:p@/db", "postgresql://u@/db?host=/tmp"])
async def test_socket_paths_are_refused(url: str) -> None:
    assert "needs a host name" in str(await refusal(url))
