"""A real MongoDB wire server on loopback (SecantusDB), one per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo.database import Database
from secantus import SecantusDBServer


@pytest.fixture(scope="module")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with SecantusDBServer(storage_path=str(tmp_path_factory.mktemp("mongo"))) as server:
        yield server.uri


@pytest.fixture
def db(mongo_uri: str, request: pytest.FixtureRequest) -> Iterator[Database[dict[str, Any]]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_uri, tz_aware=True)
    name = "t_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:40]
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def repo_path() -> Path:
    return Path(__file__).resolve().parents[2]
