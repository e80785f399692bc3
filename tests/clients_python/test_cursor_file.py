"""The cursor file: saved whole or not at all, and a clear error for one that is not a cursor."""

from __future__ import annotations

import os

import pytest

from quantum_signals_client import Client, Cursor, CursorFile, CursorFileError


def test_save_then_load(tmp_path):
    file = CursorFile(tmp_path / "sub" / "bot.cursor")
    assert file.load() is None

    file.save(Cursor("e1", 41))
    file.save(Cursor("e1", 42))

    assert file.load() == Cursor("e1", 42)
    assert os.listdir(tmp_path / "sub") == ["bot.cursor"]  # no temporary file left behind


def test_a_failed_save_leaves_the_old_cursor(tmp_path):
    file = CursorFile(tmp_path / "bot.cursor")
    file.save(Cursor("e1", 1))

    with pytest.raises(TypeError):
        file.save(Cursor("e1", object()))  # not JSON: fails while writing the temporary file

    assert file.load() == Cursor("e1", 1)
    assert os.listdir(tmp_path) == ["bot.cursor"]


@pytest.mark.parametrize(
    "text", ["", "{", "[]", '{"epoch": "e"}', '{"epoch": "", "seq": 1}', '{"epoch": "e", "seq": -1}']
)
def test_a_file_that_is_no_cursor_names_itself_and_the_fix(tmp_path, text):
    path = tmp_path / "bot.cursor"
    path.write_text(text)

    with pytest.raises(CursorFileError, match=r"bot\.cursor is not a cursor file .* delete it"):
        Client("http://127.0.0.1:1", cursor=path)
