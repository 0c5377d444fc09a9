"""Training: the thesis recipe, the loop, metrics, run directories, data-parallel helpers.

The package is also the top-level API call ``nlseg.train(...)``: calling it runs
:func:`nlseg.api.training.train` (what ``nlseg train`` runs). A package named ``nlseg.train`` and a
function of that name cannot both be the attribute ``nlseg.train`` (importing the package sets the
attribute), so the package itself is callable and ``nlseg.train.loop`` keeps working.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableTrainPackage(types.ModuleType):
    """``nlseg.train``: this package, and when called, :func:`nlseg.api.training.train`."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from nlseg.api.training import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableTrainPackage
