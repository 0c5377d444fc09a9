"""Files that ship in the repository's ``assets/`` folder: demo weights and the sample clip.

Found beside the package (editable installs, running from a checkout) or under the folder
named by ``NLSEG_ASSETS``.
"""

from __future__ import annotations

import os
from pathlib import Path

from nlseg.errors import InputError

ASSETS_DIR = Path(os.environ.get("NLSEG_ASSETS", Path(__file__).resolve().parents[1] / "assets"))
DEMO_WEIGHTS = ASSETS_DIR / "demo_bdd100k.pt"
SAMPLE_CLIP = ASSETS_DIR / "sample_drive.mp4"


def demo_weights() -> Path:
    """The bundled demo checkpoint; InputError if this installation has none."""
    if not DEMO_WEIGHTS.is_file():
        raise InputError(f"{DEMO_WEIGHTS}: the bundled demo weights are missing; pass a weights file "
                         "or set NLSEG_ASSETS to a folder that holds demo_bdd100k.pt")
    return DEMO_WEIGHTS
