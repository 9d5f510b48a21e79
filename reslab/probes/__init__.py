"""Analyses that take any model following the block protocol and return saveable results."""

from .curvature import hessian_extremes, negative_curvature_share
from .discovery import DiscoveryError, as_block_net
from .gradflow import GradientNorms, LayerResponses, ShortcutShares, gradient_norms, layer_responses, shortcut_shares
from .gradflow_record import GradientFlowHistory, GradientFlowRecorder
from .identity import IdentityResult, IdentitySettings, identity_fitting
from .landscape import (
    LandscapeResult,
    SurfaceOptions,
    filter_norms,
    loss_interpolation,
    loss_line,
    loss_plane,
    random_direction,
)
from .lesion import LesionResult, kendall_tau, lesion_cost, lesion_predictions, lesion_study
from .line_gradients import LineGradients, line_gradients
from .paths import PathResult, PathSampler, path_counts, path_gradients, shortest_interval, skippable_blocks
from .propagation import Propagation, signal_propagation
from .result import ProbeResult
from .shattered import ShatteredResult, ShatteredSettings, shattered_gradients
from .tangents import input_gradients
from .through_time import TimeGradients, time_gradients

__all__ = [
    "DiscoveryError",
    "GradientFlowHistory",
    "GradientFlowRecorder",
    "GradientNorms",
    "IdentityResult",
    "IdentitySettings",
    "LandscapeResult",
    "LayerResponses",
    "LesionResult",
    "LineGradients",
    "PathResult",
    "PathSampler",
    "ProbeResult",
    "Propagation",
    "ShatteredResult",
    "ShatteredSettings",
    "SurfaceOptions",
    "ShortcutShares",
    "TimeGradients",
    "as_block_net",
    "filter_norms",
    "gradient_norms",
    "hessian_extremes",
    "identity_fitting",
    "input_gradients",
    "kendall_tau",
    "layer_responses",
    "lesion_cost",
    "lesion_predictions",
    "lesion_study",
    "line_gradients",
    "loss_interpolation",
    "loss_line",
    "loss_plane",
    "negative_curvature_share",
    "path_counts",
    "path_gradients",
    "random_direction",
    "shattered_gradients",
    "shortcut_shares",
    "shortest_interval",
    "signal_propagation",
    "time_gradients",
    "skippable_blocks",
]
