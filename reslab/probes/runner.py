"""One probe by name, on one net and one batch of data, into a folder: what ``reslab probe`` runs.

``run_probe(name, net, x, y, folder, settings)`` runs the probe with its command-line
defaults (overridden by ``settings``), saves each result (``ProbeResult.save``) and a
manifest, ``probe.json``: the probe, its settings, the caller's context (which net, which
data) and a fingerprint of the net's weights, the data and the settings. Run again with
the same fingerprint, it returns the saved results without computing anything; the
landscape grid also resumes row by row after an interruption (``resume.GridRows``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..files import write_json
from .gradflow import GradientNorms, ShortcutShares, gradient_norms, shortcut_shares
from .landscape import LandscapeResult, loss_line, loss_plane
from .lesion import LesionResult, lesion_study
from .line_gradients import LineGradients, line_gradients
from .paths import PathResult, path_gradients
from .propagation import Propagation, signal_propagation
from .result import ProbeResult
from .resume import fingerprint

MANIFEST = "probe.json"
GRID_ROWS = ".landscape-rows.npz"
RESULTS = {
    c.__name__: c
    for c in (LesionResult, PathResult, GradientNorms, ShortcutShares, Propagation, LandscapeResult, LineGradients)
}


@dataclass(frozen=True)
class ProbeSpec:
    """A probe as the command line runs it: default sample count and settings, and the call."""

    name: str
    what: str  # one line: what it measures, after which paper
    samples: int
    defaults: dict[str, Any]
    classification: bool  # needs class (or token) targets
    run: Callable[[nn.Module, torch.Tensor, torch.Tensor, dict[str, Any], Path], dict[str, ProbeResult]]


def _landscape(net, x, y, s, folder):
    fn = {"plane": loss_plane, "line": loss_line}.get(s["kind"])
    if fn is None:
        raise ConfigError(f"landscape kind must be plane or line, got {s['kind']!r}")
    args = {k: v for k, v in s.items() if k != "kind"}
    return {"landscape": fn(net, x, y, resume=folder / GRID_ROWS, **args)}


PROBES: dict[str, ProbeSpec] = {
    p.name: p
    for p in (
        ProbeSpec(
            "lesion",
            "test error with each block deleted, k blocks deleted, k swaps (Veit2016 Fig. 3-5)",
            500,
            {"draws": 2, "batch_size": 256, "seed": 0},
            True,
            lambda net, x, y, s, folder: {"lesion": lesion_study(net, x, y, **s)},
        ),
        ProbeSpec(
            "paths",
            "gradient magnitude and contribution of paths of each length (Veit2016 Fig. 6)",
            64,
            {"samples_per_length": 8, "batch_size": 16, "seed": 0},
            True,
            lambda net, x, y, s, folder: {"paths": path_gradients(net, x, y, **s)},
        ),
        ProbeSpec(
            "gradflow",
            "weight- and activation-gradient norms, shortcut share per block (He2015, He2016)",
            128,
            {"seed": 0},
            False,
            lambda net, x, y, s, folder: {
                "norms": gradient_norms(net, x, y, **s),
                "shares": shortcut_shares(net, x, y, **s),
            },
        ),
        ProbeSpec(
            "propagation",
            "backward signal at every block boundary and the identity term's share (He2016)",
            128,
            {"branch_scale": 1.0, "seed": 0},
            False,
            lambda net, x, y, s, folder: {"propagation": signal_propagation(net, x, y, **s)},
        ),
        ProbeSpec(
            "landscape",
            "filter-normalized loss surface around the weights (Li2018)",
            500,
            {"kind": "plane", "steps": 11, "span": 1.0, "batch_size": 500, "seed": 0},
            True,
            _landscape,
        ),
        ProbeSpec(
            "shattered",
            "gradients along lines between the net's own inputs, per block (Balduzzi2017)",
            8,
            {"pairs": 4, "grid": 128, "seed": 0},
            False,
            lambda net, x, y, s, folder: {"lines": line_gradients(net, x, **s)},
        ),
    )
}


def probe_spec(name: str) -> ProbeSpec:
    if name not in PROBES:
        raise ConfigError(f"unknown probe {name!r}; choose one of {', '.join(PROBES)}")
    return PROBES[name]


def settings_for(spec: ProbeSpec, overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(spec.defaults))
    if unknown:
        raise ConfigError(
            f"probe {spec.name} has no setting {', '.join(unknown)}; it takes: {', '.join(spec.defaults)}"
        )
    return {**spec.defaults, **overrides}


@dataclass
class ProbeRun:
    """What ``run_probe`` produced: the manifest and the saved results, by label."""

    folder: Path
    manifest: dict[str, Any]
    results: dict[str, ProbeResult]
    reused: bool


def load_run(folder: str | Path) -> ProbeRun:
    """The probe run saved in ``folder`` (its manifest and results), as ``run_probe`` wrote it."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        results = {k: RESULTS[r["class"]].load(folder / r["file"]) for k, r in manifest["results"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{folder} holds no complete probe run ({type(exc).__name__}: {exc})") from None
    return ProbeRun(folder, manifest, results, reused=True)


def _saved(folder: Path, key: str) -> ProbeRun | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        return None
    try:
        return load_run(folder)
    except ConfigError:
        return None


def run_probe(
    name: str,
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    folder: str | Path,
    settings: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> ProbeRun:
    """Run probe ``name`` (see ``PROBES``) and save it under ``folder``, or reuse what is saved there."""
    spec = probe_spec(name)
    s = settings_for(spec, settings or {})
    if spec.classification and y.is_floating_point():
        raise ConfigError(f"probe {name} measures classification errors; this data has real-valued targets")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = fingerprint(name, sorted(s.items()), list(net.state_dict().values()), x, y)
    saved = _saved(folder, key)
    if saved is not None:
        return saved
    start = time.perf_counter()
    results = spec.run(net, x, y, s, folder)
    files = {label: f"{name}-{label}" if len(results) > 1 else name for label in results}
    for label, result in results.items():
        result.save(folder / files[label])
    manifest = {
        "probe": name,
        "what": spec.what,
        "key": key,
        "settings": s,
        "samples": len(x),
        "context": context or {},
        "seconds": round(time.perf_counter() - start, 3),
        "results": {label: {"file": files[label], "class": type(r).__name__} for label, r in results.items()},
    }
    write_json(folder / MANIFEST, manifest)
    (folder / GRID_ROWS).unlink(missing_ok=True)  # the saved result now holds the whole grid
    return ProbeRun(folder, manifest, results, reused=False)
