"""The inapp service running in this process, on the test's bus namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from services.inapp.__main__ import create_runtime
from services.inapp.settings import InappSettings
from shared.bus.topology import Topology
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS, running


@pytest.fixture
def topo(namespace: str) -> Topology:
    return Topology(namespace, TEST_RETRY_DELAYS)


@pytest.fixture
async def inapp(make_settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    async with running(create_runtime(make_settings(InappSettings))) as runtime:
        yield runtime
