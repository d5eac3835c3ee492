"""End users (merchants) of an ISV."""

from __future__ import annotations

from embedded_ui.users.service import (
    MAX_BATCH,
    BatchResult,
    NewUser,
    UserRecord,
    UserService,
    clean_text,
    new_user_row,
    read_inline,
)

__all__ = [
    "MAX_BATCH",
    "BatchResult",
    "NewUser",
    "UserRecord",
    "UserService",
    "clean_text",
    "new_user_row",
    "read_inline",
]
