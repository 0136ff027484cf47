"""0.1.0 compatibility path: ``from zeroflow.core import ...`` keeps working."""

from __future__ import annotations

from .. import *  # noqa: F403 - this module re-exports the package surface on purpose
from .. import __all__ as _package_all
from .. import __version__

__all__ = list(_package_all)
__version__ = __version__
