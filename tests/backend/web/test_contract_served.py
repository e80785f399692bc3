"""The web process serves the contract: /api/asyncapi.json is the committed document, and the dashboard's symbol
and timeframe rules are rendered from the contract's constants."""

from __future__ import annotations

import json

from backend import contract
from backend.contract_docs import ASYNCAPI_PATH


def test_asyncapi_json_is_served_as_committed(client):
    answer = client.get("/api/asyncapi.json")
    assert answer.status_code == 200
    assert answer.json() == json.loads(ASYNCAPI_PATH.read_text(encoding="utf-8"))


def test_the_dashboard_renders_the_contracts_rules(client):
    page = client.get("/").text
    assert f'data-symbol-pattern="{contract.SYMBOL_PATTERN}"' in page
    assert f'data-timeframe-pattern="{contract.TIMEFRAME_PATTERN}"' in page
    assert 'pattern="[A-Za-z0-9][A-Za-z0-9\\/:._\\-]{0,31}"' in page
