"""Progress bars on by default (off with `--quiet` or RKD_QUIET=1), and known-harmless third-party noise off."""
from __future__ import annotations

import logging
import os
import warnings

_QUIETED = False


def progress_enabled(quiet: bool = False) -> bool:
    """True unless `quiet` or RKD_QUIET is set to a true value."""
    return not quiet and os.environ.get("RKD_QUIET", "").strip().lower() not in {"1", "true", "yes", "on"}


def quiet_third_party() -> None:
    """Silence warnings that look like failures but are not (once per process; RKD_VERBOSE=1 keeps them).

    - transformers' "LOAD REPORT ... MISSING classifier.weight": printed whenever a task head is new (the DRR
      tagger's token-classification head, trained here from scratch) or unused (SPLADE's MLM head loaded into a
      plain encoder); every load the package does is of a local folder whose expected keys are checked by tests.
    - transformers' "Loading weights" bar for every local model load (HF_HUB_DISABLE_PROGRESS_BARS): a second each.
    - torchvision's "Failed to load image Python extension": transformers imports it only for image models.
    """
    global _QUIETED
    if _QUIETED or os.environ.get("RKD_VERBOSE", "").strip() in {"1", "true", "yes"}:
        return
    _QUIETED = True
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("transformers", "transformers.modeling_utils"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*Failed to load image Python extension.*")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\..*")
