"""Analyses that take any model following the block protocol and return saveable results."""

from .result import ProbeResult

__all__ = ["ProbeResult"]
