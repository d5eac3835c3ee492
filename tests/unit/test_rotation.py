"""Every vault-sealed column is rotated: each binary column of the schema is one of
:data:`embedded_ui.rotation.SEALED` (a new sealed column must be added there, or `embedded-ui
vault rotate` would leave it under a key about to be removed)."""

from __future__ import annotations

from sqlalchemy import LargeBinary

from embedded_ui.rotation import SEALED
from embedded_ui.store import Base


def test_every_binary_column_is_rotated_with_its_key_id() -> None:
    binary = {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    rotated = {(s.model.__tablename__, s.ciphertext.key) for s in SEALED}
    assert binary == rotated
    for sealed in SEALED:
        assert sealed.key_id.class_ is sealed.model and sealed.ciphertext.class_ is sealed.model
        assert sealed.key_id.key.endswith("key_id")
