"""One module per claim of claims.md: configs per scale, the runs, the analysis, the verdict."""

from .results import FigureSpec, Series, StudyResult

__all__ = ["FigureSpec", "Series", "StudyResult"]
