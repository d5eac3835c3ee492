"""Filling the catalog's ``{name}`` templates."""

from __future__ import annotations

import pytest

from embedded_ui.catalog import MissingValue, fill, fill_text, fill_url


def test_url_values_are_percent_encoded_so_they_cannot_change_the_host_or_path() -> None:
    url = fill_url(
        "https://{shop}.myshopify.com/admin",
        "/orders/{order_id}",
        {"shop": "evil.com/x?", "order_id": "1/../../secrets"},
    )
    assert url == "https://evil.com%2Fx%3F.myshopify.com/admin/orders/1%2F..%2F..%2Fsecrets"


def test_the_service_url_goes_in_whole() -> None:
    url = fill_url("{sandbox_url}/api", "/me", {"sandbox_url": "http://127.0.0.1:8001"})
    assert url == "http://127.0.0.1:8001/api/me"


def test_headers_take_values_as_they_are_and_bodies_keep_types() -> None:
    assert fill_text("Bearer {access_token}", {"access_token": "a/b c"}) == "Bearer a/b c"
    body = fill({"status_id": "{status}", "note": "set to {status}", "n": 3}, {"status": 2})
    assert body == {"status_id": 2, "note": "set to 2", "n": 3}


@pytest.mark.parametrize("values", [{}, {"access_token": None}])
def test_a_missing_value_names_itself(values: dict[str, object]) -> None:
    with pytest.raises(MissingValue) as caught:
        fill_text("Bearer {access_token}", values)
    assert caught.value.name == "access_token"
