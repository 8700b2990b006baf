"""CJK character ranges (CJK Unified Ideographs, Extension A, Compatibility Ideographs) and their regexes."""
from __future__ import annotations

import re

CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))
CJK = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in CJK_RANGES)  # a regex character-class body
IS_CJK = re.compile(rf"[{CJK}]")


def is_cjk(ch: str) -> bool:
    """Whether one character is a CJK ideograph."""
    return any(lo <= ord(ch) <= hi for lo, hi in CJK_RANGES)
