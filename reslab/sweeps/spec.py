"""A sweep file: a grid of training runs over named axes, read and checked before anything trains.

```yaml
name: depth                        # optional; default: the file's name
data: fashion-mnist                # any field of a run (TrainConfig) but its seed
data_options: {train_size: 2000, val_size: 500, image_size: 14}
recipe: {preset: quick, epochs: 1} # a preset, recipe fields, or both
model_options: {width: 32}
seeds: 2                           # per cell: seeds 0..N-1, or a list (--seeds N overrides)
metrics: [train_error, val_error]  # summarised per cell (default: train, val and test error)
resources: {cpus: 1, gpus: 0, memory: 2GB}   # what each run reserves on Ray
axes:                              # the grid: every combination of one value per axis
  model: [mlp_plain, mlp_residual]           # a field and its values
  depth: {model_options.depth: [4, 8, 16]}   # a named axis over one field
  schedule:                                  # a named axis whose values set several fields
    short: {recipe.epochs: 1, recipe.lr: 0.1}
    long: {recipe.epochs: 2, recipe.lr: 0.05}
```

Fields are named as paths: a run's field (``model``, ``data``, ``tag``, ...), ``recipe`` (a
preset), ``recipe.FIELD``, ``model_options.KEY``, ``data_options.KEY``. Every run is built and
its model checked (on the meta device, allocating nothing) when the file is read, so a
mistake is one line naming the file, the line and the key, before any training.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..data import load_dataset
from ..errors import ConfigError, DataError, ReslabError, file_errors
from ..files import is_finite_number
from ..runs.cluster import RunResources, parse_memory
from ..train import Recipe, TrainConfig, get_recipe
from ..train.setup import check_buildable

METRICS = (
    "train_error",
    "val_error",
    "test_error",
    "train_loss",
    "val_loss",
    "test_loss",
    "wall_time_s",
    "img_per_s",
    "steps",
)
DEFAULT_METRICS = ("train_error", "val_error", "test_error")
SWEEP_KEYS = ("name", "axes", "seeds", "metrics", "resources")
RUN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "seed")
RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe))
OPTION_GROUPS = ("model_options", "data_options")
PLAIN_FIELDS = tuple(f for f in RUN_FIELDS if f not in OPTION_GROUPS)  # set whole (recipe: a preset's name)
RESOURCE_KEYS = ("cpus", "gpus", "memory")


class SweepError(ConfigError):
    """A mistake in a sweep file, naming the file, the line and the key."""


Settings = dict[str, tuple[tuple, Any]]  # field path -> (where in the file, value)


@dataclass(frozen=True)
class Axis:
    """One dimension of the grid: a label per value, and the fields each value sets."""

    name: str
    labels: tuple[str, ...]
    settings: tuple[Settings, ...]
    numbers: tuple[float, ...] | None = None  # the values, when they are numbers (plotted on a number axis)


@dataclass
class Cell:
    """One point of the grid (a label per axis) and its runs, one per seed."""

    labels: dict[str, str]
    configs: list[TrainConfig]


@dataclass
class Sweep:
    name: str
    path: Path
    axes: list[Axis]
    seeds: list[int]
    metrics: list[str]
    resources: dict[str, Any]
    cells: list[Cell]

    @property
    def configs(self) -> list[TrainConfig]:
        return [c for cell in self.cells for c in cell.configs]


class _Source:
    """The file's data and the line of every key in it."""

    def __init__(self, path: Path):
        self.path = path
        with file_errors(f"cannot read the sweep file {path}"):
            text = path.read_text()
        try:
            loader = yaml.SafeLoader(text)
            node = loader.get_single_node()
            self.data = loader.construct_document(node) if node is not None else None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise SweepError(f"{path}, line {mark.line + 1 if mark else '?'}: not valid YAML: {exc.problem}") from None
        self.lines: dict[tuple, int] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                where = (*path, key.value)
                if where in self.lines and where != ():
                    raise self.error(where, f"given twice (lines {self.lines[where]} and {key.start_mark.line + 1})")
                self.lines[where] = key.start_mark.line + 1
                self._walk(value, where)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i))

    def line(self, path: tuple) -> int:
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, path: tuple, problem: str) -> SweepError:
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "the file"
        return SweepError(f"{self.path}, line {self.line(path)}: {key}: {problem}")


def load_sweep(path: str | Path, seeds: int | None = None, data_dir: str | None = None) -> Sweep:
    """Read, check and plan the sweep in ``path``; ``seeds`` (a count) replaces the file's."""
    src = _Source(Path(path))
    if not isinstance(src.data, dict):
        raise src.error((), "a sweep file is a mapping of keys (data, model, recipe, axes, seeds, ...)")
    unknown = [k for k in src.data if k not in SWEEP_KEYS and k not in RUN_FIELDS]
    if unknown:
        hint = "use seeds: N" if unknown[0] == "seed" else f"known keys: {', '.join(SWEEP_KEYS + RUN_FIELDS)}"
        raise src.error((unknown[0],), f"unknown key ({hint})")
    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    base = _base_settings(src)
    if data_dir:
        base["data_dir"] = ((), data_dir)
    axes = [_axis(src, name, values) for name, values in _mapping(src, "axes").items()]
    sweep = Sweep(
        name=_name(src, Path(path)),
        path=Path(path),
        axes=axes,
        seeds=list(range(seeds)) if seeds is not None else _seeds(src),
        metrics=_metrics(src),
        resources=_resources(src),
        cells=[],
    )
    sweep.cells = _plan(src, base, axes, sweep.seeds)
    return sweep


def _mapping(src: _Source, key: str) -> dict:
    value = src.data.get(key)
    if value is not None and not isinstance(value, dict):
        raise src.error((key,), f"must be a mapping (key: value), got {type(value).__name__}")
    return value or {}


def _name(src: _Source, path: Path) -> str:
    """The sweep's name (its summary's folder): the file's stem unless ``name`` says otherwise."""
    name = src.data.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise src.error(("name",), f"must be a word of letters, digits, '_', '.' or '-', got {name!r}")
    return name


def _base_settings(src: _Source) -> Settings:
    """The fields every run shares."""
    out: Settings = {}
    for key, value in src.data.items():
        if key in SWEEP_KEYS:
            continue
        if key in OPTION_GROUPS:
            for option, v in _mapping(src, key).items():
                out[f"{key}.{option}"] = ((key, option), v)
        elif key == "recipe" and isinstance(value, dict):
            for field, v in value.items():
                name = "recipe" if field == "preset" else f"recipe.{field}"
                out[name] = (("recipe", field), v)
        else:
            out[key] = ((key,), value)
    for name, (where, _) in out.items():
        _check_field(src, name, where)
    return out


def _check_field(src: _Source, name: str, where: tuple) -> None:
    group, dot, rest = name.partition(".")
    if dot and group in OPTION_GROUPS and rest:
        return
    if dot and group == "recipe" and rest in RECIPE_FIELDS:
        return
    if not dot and name in PLAIN_FIELDS:
        return
    if name == "seed":
        raise src.error(where, "seeds are not an axis; set seeds: N (or a list) at the top")
    if group == "recipe":
        raise src.error(where, f"{rest!r} is not a recipe field; recipe fields: {', '.join(RECIPE_FIELDS)}")
    raise src.error(
        where,
        f"{name!r} is not a field of a run: name one of {', '.join(PLAIN_FIELDS)}, recipe.FIELD, "
        "model_options.KEY or data_options.KEY",
    )


def _axis(src: _Source, name: str, values: Any) -> Axis:
    """``field: [values]``, ``name: {field: [values]}`` or ``name: {label: {field: value, ...}}``."""
    where = ("axes", name)
    if isinstance(values, dict) and values and all(isinstance(v, dict) for v in values.values()):
        settings = []
        for label, fields in values.items():
            for field in fields:
                _check_field(src, field, (*where, label, field))
            settings.append({f: ((*where, label, f), v) for f, v in fields.items()})
        return Axis(name, tuple(str(label) for label in values), tuple(settings))
    if isinstance(values, dict) and len(values) == 1 and isinstance(next(iter(values.values())), list):
        field, values = next(iter(values.items()))
        where = (*where, field)
    elif isinstance(values, list):
        field = name
    else:
        raise src.error(where, "an axis is a list of values, {field: [values]} or {label: {field: value, ...}}")
    _check_field(src, field, where)
    if not values:
        raise src.error(where, "an axis needs at least one value")
    labels = tuple(_label(v) for v in values)
    if len(set(labels)) != len(labels):
        raise src.error(where, "its values must differ")
    numbers = tuple(float(v) for v in values) if all(is_finite_number(v) for v in values) else None
    return Axis(name, labels, tuple({field: ((*where, i), v)} for i, v in enumerate(values)), numbers)


def _label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _seeds(src: _Source) -> list[int]:
    seeds = src.data.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        return list(range(seeds))
    integers = isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    if integers and seeds and len(set(seeds)) == len(seeds):
        return list(seeds)
    raise src.error(("seeds",), f"must be a count >= 1 or a list of different integers, got {seeds!r}")


def _metrics(src: _Source) -> list[str]:
    metrics = src.data.get("metrics", list(DEFAULT_METRICS))
    if not isinstance(metrics, list) or not metrics:
        raise src.error(("metrics",), f"must be a list of result fields, e.g. [{', '.join(DEFAULT_METRICS)}]")
    for i, m in enumerate(metrics):
        if m not in METRICS:
            raise src.error(("metrics", i), f"unknown metric {m!r}; choose from {', '.join(METRICS)}")
    return list(metrics)


def _resources(src: _Source) -> dict[str, Any]:
    """What each run reserves on Ray (``RunResources`` fields; memory as a size like 4GB)."""
    resources = dict(_mapping(src, "resources"))
    for key, value in resources.items():
        if key not in RESOURCE_KEYS:
            raise src.error(("resources", key), f"unknown resource; choose from {', '.join(RESOURCE_KEYS)}")
        try:
            if key == "memory":
                resources[key] = parse_memory(value)
            RunResources(**{key: resources[key]})
        except ConfigError as exc:
            raise src.error(("resources", key), str(exc)) from None
    return resources


def _plan(src: _Source, base: Settings, axes: list[Axis], seeds: list[int]) -> list[Cell]:
    """Every combination of axis values: its runs, each built and checked (naming the file line of a mistake)."""
    first = dict(base)
    for axis in axes:
        first.update(axis.settings[0])
    _build(src, first, seeds[0])
    for axis in axes:  # one value changed at a time first, so a bad value is named by its own line
        for settings in axis.settings[1:]:
            _build(src, {**first, **settings}, seeds[0])
    cells, checked = [], set()
    for combo in itertools.product(*(range(len(a.labels)) for a in axes)):
        settings = dict(base)
        for axis, i in zip(axes, combo):
            settings.update(axis.settings[i])
        configs = [_build(src, settings, seed) for seed in seeds]
        _check_model(src, settings, configs[0], checked)
        cells.append(Cell({a.name: a.labels[i] for a, i in zip(axes, combo)}, configs))
    return cells


def _build(src: _Source, settings: Settings, seed: int) -> TrainConfig:
    """The run these settings describe; a mistake names the setting that causes it."""
    try:
        return _config({k: v for k, (_, v) in settings.items()}, seed)
    except ReslabError as exc:
        raise src.error(_culprit(settings, seed), str(exc)) from None


def _config(flat: dict[str, Any], seed: int) -> TrainConfig:
    if "model" not in flat or "data" not in flat:
        raise ConfigError("a run needs a model and data: set them at the top or as axes")
    recipe = get_recipe(flat["recipe"]) if "recipe" in flat else Recipe()
    changes = {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("recipe.")}
    groups = {g: {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith(g + ".")} for g in OPTION_GROUPS}
    fields = {k: v for k, v in flat.items() if "." not in k and k != "recipe"}
    try:
        return TrainConfig(recipe=recipe.replace(**changes) if changes else recipe, seed=seed, **groups, **fields)
    except TypeError as exc:  # a value of the wrong type, e.g. a mapping for a number
        raise ConfigError(f"a value of the wrong type ({exc})") from None


def _culprit(settings: Settings, seed: int, check: Callable[[TrainConfig], None] | None = None) -> tuple:
    """Where the setting is whose removal lets the run build and pass ``check`` (the last such:
    an axis value rather than the shared field it overrides), else ``()``."""
    found: tuple = ()
    for name, (where, _) in settings.items():
        try:
            config = _config({k: v for k, (_, v) in settings.items() if k != name}, seed)
            if check is not None:
                check(config)
        except ReslabError:
            continue
        found = where
    return found


def _check_model(src: _Source, settings: Settings, config: TrainConfig, checked: set) -> None:
    """Load the data and build the model on the meta device (nothing allocated): bad options and
    missing data fail now, named by their line, not later on a worker."""
    key = (config.model, repr(sorted(config.model_options.items())), config.data, repr(config.data_options))
    if key in checked:
        return

    def check(c: TrainConfig) -> None:
        check_buildable(c, load_dataset(c.data, c.data_dir, **c.data_options))

    try:
        check(config)
    except ReslabError as exc:
        fallback = settings.get("data" if isinstance(exc, DataError) else "model", ((),))[0]
        raise src.error(_culprit(settings, config.seed, check) or fallback, str(exc)) from None
    checked.add(key)
