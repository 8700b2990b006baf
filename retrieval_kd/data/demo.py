"""Embedded demo collections (CACM, normalised and gzipped) used when the raw data are absent."""
from __future__ import annotations

import sys
from pathlib import Path

from retrieval_kd.errors import DataNotFoundError
from retrieval_kd.paths import data_root

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
`python -m retrieval_kd.data.demo` where the raw files are present.
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


def build_demo(name: str = "cacm", root: Path | None = None, dest: Path | None = None) -> Path:
    """Normalise `name` from the raw files and write the gzipped copy plus NOTICE into the demo folder."""
    from retrieval_kd.data.registry import available as registered

    if name not in NOTICES:
        raise DataNotFoundError(f"no demo recipe for '{name}' (have: {', '.join(NOTICES)})")
    entry = registered()[name]
    root = Path(root) if root else data_root()
    if not (root / entry.raw).is_dir():
        raise DataNotFoundError(f"building the demo needs {root / entry.raw}")
    ds = entry.build(root)
    ds.meta.setdefault("reader_version", entry.version)
    ds.meta["embedded"] = "normalised copy shipped in retrieval_kd/data/demo; see NOTICE"
    dest = Path(dest) if dest else DEMO_DIR / name
    ds.save(dest, compress=True)
    (dest / "NOTICE").write_text(NOTICES[name], encoding="utf-8")
    dest.chmod(0o755)  # the temp folder behind the atomic rename is private (0700)
    size = sum(p.stat().st_size for p in dest.iterdir())
    if size > MAX_BYTES:
        raise RuntimeError(f"demo {name} is {size:,} bytes, over the {MAX_BYTES:,} limit")
    return dest


if __name__ == "__main__":
    for n in sys.argv[1:] or NOTICES:
        out = build_demo(n)
        print(f"{out}: {sum(p.stat().st_size for p in out.iterdir()):,} bytes")
