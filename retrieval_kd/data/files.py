"""File helpers shared by the readers: required files, numbered lines, whitespace clean-up, tolerant XML."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from retrieval_kd.errors import DataFormatError, DataNotFoundError

_DOCTYPE = re.compile(r"<!DOCTYPE[^>]*>")


def clean(text: str) -> str:
    """Collapse runs of whitespace to one space."""
    return " ".join(text.split())


def need(path: Path) -> Path:
    """Return `path`, or raise DataNotFoundError naming it."""
    if not path.exists():
        raise DataNotFoundError(f"{path}: file not found")
    return path


def read_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(line number, line without newline) for each line of a text file."""
    with open(need(path), encoding=encoding, errors="strict") as fh:
        for i, line in enumerate(fh, 1):
            yield i, line.rstrip("\r\n")


def parse_xml(path: Path) -> ET.Element:
    """Parse an XML file with its DOCTYPE blanked (line numbers kept); errors name path and line."""
    raw = need(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(path, f"not UTF-8 at byte {e.start}", line=raw.count(b"\n", 0, e.start) + 1) from None
    text = _DOCTYPE.sub(lambda m: "\n" * m.group(0).count("\n"), text, count=1)
    try:
        return ET.fromstring(text)
    except ET.ParseError as e:
        line, col = e.position
        reason = str(e).split(":")[0]
        raise DataFormatError(path, f"malformed XML: {reason} (column {col})", line=line) from None
