"""The committed docs/openapi.json and docs/asyncapi.json are what `make contract` writes from the models."""

from __future__ import annotations

import pytest

from backend import contract_docs


@pytest.mark.parametrize("path", [contract_docs.OPENAPI_PATH, contract_docs.ASYNCAPI_PATH], ids=lambda p: p.name)
def test_the_committed_documents_are_fresh(path):
    expected = contract_docs.documents()[path]
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    assert committed == expected, f"docs/{path.name} is stale: run `make contract` and commit it"
