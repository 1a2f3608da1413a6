"""The sync and async client suites are twins: the same tests, test for test (httpx's habit)."""

import ast
from pathlib import Path

import pytest

# The broker plays no part in what is tested here: the RabbitMQ pass leaves it out.
pytestmark = pytest.mark.any_broker

HERE = Path(__file__).parent


def _tests(name: str) -> list[str]:
    tree = ast.parse((HERE / name).read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    ]


def test_every_sync_test_has_an_async_twin_in_the_same_order():
    assert _tests("test_client.py") == _tests("test_async_client.py")
