"""Analyses that take any model following the block protocol and return saveable results."""

from .adapters import adapt_timm_resnet, adapt_torchvision_resnet, as_block_net
from .curvature import hessian_extremes, negative_curvature_share
from .landscape import LandscapeResult, filter_norms, loss_interpolation, loss_line, loss_plane, random_direction
from .lesion import LesionResult, kendall_tau, lesion_cost, lesion_predictions, lesion_study
from .paths import PathResult, PathSampler, path_counts, path_gradients, shortest_interval, skippable_blocks
from .result import ProbeResult

__all__ = [
    "LandscapeResult",
    "LesionResult",
    "PathResult",
    "PathSampler",
    "ProbeResult",
    "adapt_timm_resnet",
    "adapt_torchvision_resnet",
    "as_block_net",
    "filter_norms",
    "hessian_extremes",
    "kendall_tau",
    "lesion_cost",
    "lesion_predictions",
    "lesion_study",
    "loss_interpolation",
    "loss_line",
    "loss_plane",
    "negative_curvature_share",
    "path_counts",
    "path_gradients",
    "random_direction",
    "shortest_interval",
    "skippable_blocks",
]
