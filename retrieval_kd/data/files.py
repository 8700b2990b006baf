"""File helpers shared by the readers: required files, numbered lines (plain or .gz), JSON, tolerant XML."""
from __future__ import annotations

import gzip
import json
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrieval_kd.errors import DataFormatError, DataNotFoundError, DataWarning

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


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without newline) of a UTF-8 file, gzip-compressed when its name ends in .gz; a line
    that is not UTF-8 is an error naming it (lines are decoded one at a time, so the number is exact)."""
    path = Path(path)
    if need(path).is_dir():
        raise DataFormatError(path, "is a folder; expected a file")
    opener = gzip.open if path.suffix == ".gz" else open
    i = 0
    try:
        with opener(path, "rb") as fh:
            for i, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataFormatError(path, f"not UTF-8 (byte {e.start + 1} of the line)", line=i) from None
                yield i, (line[1:] if i == 1 and line.startswith("\ufeff") else line).rstrip("\r\n")
    except (gzip.BadGzipFile, EOFError) as e:
        raise DataFormatError(path, f"broken gzip file ({e})", line=i + 1) from None


def load_json(path: Path) -> Any:
    """Parse a JSON file, naming the file, line and column when it is malformed."""
    path = Path(path)
    try:
        return json.loads(need(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"invalid JSON: {e.msg} (column {e.colno})", line=e.lineno) from None
    except UnicodeDecodeError as e:
        raise DataFormatError(path, f"not UTF-8 at byte {e.start}") from None


def warn(path: str | Path, message: str, line: int | None = None) -> None:
    """A DataWarning `path[:line]: message` (something the reader left out on purpose)."""
    warnings.warn(f"{path}{f':{line}' if line is not None else ''}: {message}", DataWarning, stacklevel=3)


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


def csv_records(reader: Any, where: str | Path) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each non-blank record of a `csv.reader`; a malformed one is a file:line error."""
    import csv

    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataFormatError(where, f"malformed CSV: {e}", line=start) from None
        if any(c.strip() for c in row):
            yield start, row


def sgml_blocks(path: Path, tag: str, outside: str) -> Iterator[tuple[int, str]]:
    """(opening line, text) of each `<tag>` … `</tag>` block of an SGML file (tag case-insensitive; the text
    after the opening tag on its line is kept). Nesting, a stray close, an unclosed block or non-blank text
    outside the blocks (`outside` says what the file should be) are file:line errors."""
    open_tag, close_tag = f"<{tag.lower()}>", f"</{tag.lower()}>"
    start, block = 0, None
    for i, line in numbered_lines(path):
        s = line.strip()
        low = s.lower()
        if low.startswith(open_tag):
            if block is not None:
                raise DataFormatError(path, f"<{tag}> inside the one opened on line {start}", line=i)
            start, block = i, [s[len(open_tag):]]
        elif low.startswith(close_tag):
            if block is None:
                raise DataFormatError(path, f"</{tag}> without <{tag}>", line=i)
            yield start, "\n".join(block)
            block = None
        elif block is not None:
            block.append(line)
        elif s:
            raise DataFormatError(path, f"text outside <{tag}>…</{tag}> ({outside})", line=i)
    if block is not None:
        raise DataFormatError(path, f"<{tag}> never closed", line=start)
