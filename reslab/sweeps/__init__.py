"""Sweeps: grids of training runs a user declares in a YAML file, planned up front and summarised per cell."""

from .spec import Axis, Cell, Sweep, SweepError, load_sweep

__all__ = ["Axis", "Cell", "Sweep", "SweepError", "load_sweep"]
