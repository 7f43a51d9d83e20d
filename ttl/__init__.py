"""ttl: task transfer learning for image deraining — the library behind the study's notebooks."""
from __future__ import annotations

__version__ = "0.1.0"

from .config import PRESETS, ConfigError, resolve_config  # noqa: F401
from .utils import resolve_device, seed_everything  # noqa: F401
