"""Files that ship in the repository's ``assets/`` folder: the default weights and the sample clip.

Found beside the package (editable installs, running from a checkout) or under the folder
named by ``NLSEG_ASSETS``. The default weights are trained on CamVid (research data; see
``assets/README.md``); the sample clip is generated.
"""

from __future__ import annotations

import os
from pathlib import Path

from nlseg.errors import InputError

ASSETS_DIR = Path(os.environ.get("NLSEG_ASSETS", Path(__file__).resolve().parents[1] / "assets"))
DEFAULT_WEIGHTS = ASSETS_DIR / "camvid_realtime.pt"
SAMPLE_CLIP = ASSETS_DIR / "sample_drive.mp4"


def default_weights() -> Path:
    """The bundled default checkpoint; InputError if this installation has none."""
    if not DEFAULT_WEIGHTS.is_file():
        raise InputError(f"{DEFAULT_WEIGHTS}: the bundled default weights are missing; pass a weights file "
                         f"or set NLSEG_ASSETS to a folder that holds {DEFAULT_WEIGHTS.name}")
    return DEFAULT_WEIGHTS
