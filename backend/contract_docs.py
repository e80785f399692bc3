"""`make contract`: writes the published contract, docs/openapi.json and docs/asyncapi.json, from the models.

tests/backend/test_contract_docs.py fails when the committed copies differ from what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from backend import asyncapi
from backend.settings import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
OPENAPI_PATH = DOCS / "openapi.json"
ASYNCAPI_PATH = DOCS / "asyncapi.json"


def openapi_document() -> dict[str, Any]:
    """FastAPI's OpenAPI 3.1 document of the web app (its default settings: the document does not vary with them)."""
    from backend.web import create_app  # the web stack, for this half only: nothing is served or connected

    return create_app(Settings()).api.openapi()


def render(document: dict[str, Any]) -> str:
    """DOCUMENT as the committed file holds it: stable key order, indented, one trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def documents() -> dict[Path, str]:
    """Each published file and the text it should hold."""
    return {OPENAPI_PATH: render(openapi_document()), ASYNCAPI_PATH: render(asyncapi.build())}


def main() -> int:
    """Write both documents; print what changed."""
    for path, text in documents().items():
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(DOCS.parent)}")
        else:
            print(f"{path.relative_to(DOCS.parent)} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
