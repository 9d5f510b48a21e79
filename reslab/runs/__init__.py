"""Run directories, the SQLite run index, and the store that trains each config once."""

from ..environment import collect_env
from .index import RunIndex
from .store import RunRecord, RunStore, default_root

__all__ = ["RunIndex", "RunRecord", "RunStore", "collect_env", "default_root"]
