"""Every fenced Python block of README.md and docs/*.md runs, and the values the blocks print are the ones written.

Sybil parses each document: a block made of `>>>` lines is a doctest (its output is compared with what the
block prints), any other block runs as written. The blocks of one document share one namespace, in order, so
a block may use what an earlier block of the same document defined; a document's setup is a visible block.
A document's blocks stop at the first failure, which names the file and line.
"""
from __future__ import annotations

import doctest
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS

parser = Sybil(parsers=[PythonCodeBlockParser(doctest_optionflags=FLAGS)])


def python_blocks(path: Path) -> list:
    return list(parser.parse(path))


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_document_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    document = parser.parse(path)
    for example in document:
        try:
            example.evaluate()
        except Exception as e:
            raise AssertionError(f"{path.relative_to(ROOT)}, block at line {example.line}:\n{e}") from e


def test_the_readme_has_python_blocks_and_the_parser_sees_them() -> None:
    assert len(python_blocks(ROOT / "README.md")) >= 5

