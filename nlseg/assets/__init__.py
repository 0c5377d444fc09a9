"""The files that ship inside the package (``nlseg/assets/``): the default weights and the sample clip.

They are package data, so a wheel or ``pip install git+…`` carries them as an editable checkout
does; the folder named by ``NLSEG_ASSETS`` replaces this one. The default weights are trained on
CamVid (research data; see ``nlseg/assets/README.md``); the sample clip is generated. In a
checkout, ``assets/`` at the repository root holds links to both.
"""

from __future__ import annotations

import os
from pathlib import Path

from nlseg.errors import InputError

ASSETS_DIR = Path(os.environ.get("NLSEG_ASSETS", Path(__file__).resolve().parent))
DEFAULT_WEIGHTS = ASSETS_DIR / "camvid_realtime.pt"
SAMPLE_CLIP = ASSETS_DIR / "sample_drive.mp4"


def default_weights() -> Path:
    """The bundled default checkpoint; InputError if this installation has none."""
    if not DEFAULT_WEIGHTS.is_file():
        raise InputError(f"{DEFAULT_WEIGHTS}: the bundled default weights are missing; pass a weights file "
                         f"or set NLSEG_ASSETS to a folder that holds {DEFAULT_WEIGHTS.name}")
    return DEFAULT_WEIGHTS
