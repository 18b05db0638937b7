"""[service] api_threads sets how many threads run the API's sync routes in a process."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def opened(store_env: str) -> Any:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


def test_the_route_threads_are_what_the_config_says(opened: Any) -> None:
    import anyio.to_thread

    from sentinel.api.app import create_app
    from sentinel.settings import ServiceSection, ServiceSettings
    from tests.apiclient import TestClient

    async def tokens() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    app = create_app(opened, ServiceSettings(service=ServiceSection(api_threads=6)))  # type: ignore[call-arg]
    with TestClient(app) as client:
        assert client.portal is not None
        assert client.portal.call(tokens) == 6
        assert client.get("/healthz").status_code == 200
