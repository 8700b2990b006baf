"""Embedded demo collections (CACM, normalised and gzipped) used when the raw data are absent."""
from __future__ import annotations

from pathlib import Path

from retrieval_kd.errors import DataNotFoundError

DEMO_DIR = Path(__file__).resolve().parent / "demo"
MAX_BYTES = 2_000_000
NOTICES = {
    "cacm": """\
CACM test collection (Communications of the ACM titles and abstracts, 1958-1979; Fox 1983), as
distributed with the SMART system and by the University of Glasgow IR group
(http://ir.dcs.gla.ac.uk/resources/test_collections/cacm/). Freely distributed for research; the
source carries no explicit licence text.

Copied from: castorini/anserini src/main/resources/cacm/cacm.tar.gz (Apache-2.0 repository),
castorini/anserini-tools topics/topics.cacm.txt and qrels/qrels.cacm.txt.

This folder is not the original: it was normalised by retrieval_kd's CACM reader
(retrieval_kd/data/classic.py: title + abstract only; date, author, keyword, CA and citation lines
dropped; qrels doc ids zero-padded to the file names) and gzipped. Regenerate with
`python -m retrieval_kd.data build-demo` where the raw files are present.
""",
}


def has(name: str) -> bool:
    """Whether an embedded copy of dataset `name` ships with the package."""
    return (DEMO_DIR / name / "meta.json").is_file()


def path(name: str) -> Path:
    """Folder of the embedded copy of `name` (a dataset folder readable by Dataset.load)."""
    if not has(name):
        raise DataNotFoundError(f"no embedded demo copy of '{name}' (have: {', '.join(available())})")
    return DEMO_DIR / name


def available() -> list[str]:
    """Names of the embedded datasets."""
    return sorted(p.name for p in DEMO_DIR.iterdir() if (p / "meta.json").is_file()) if DEMO_DIR.is_dir() else []
