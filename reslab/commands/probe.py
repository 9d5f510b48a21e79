"""``reslab probe NAME (--run RUN | --model M [--weights FILE]) --data D``: one analysis on one trained net.

The net is a stored run's (its ``model.pt``, and by default its own dataset) or a
registered model with weights from any file ``load_weights`` reads; a net that does not
follow the block protocol goes through block discovery. The probe's result files, its
figures and a self-contained ``report.html`` go to ``--out`` (default
``reslab-probe/NAME``); the last line printed is the page. Run again with the same net,
data and settings, nothing is computed twice (an interrupted landscape continues).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

PROBE_NAMES = ("lesion", "paths", "gradflow", "propagation", "landscape", "shattered")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="run one analysis on a stored run or a checkpoint; writes results, figures and a page",
        description="Run one probe (" + ", ".join(PROBE_NAMES) + ") on a trained net and write its result files, "
        "figures and a self-contained HTML page. The last line printed is the page.",
    )
    p.add_argument("name", metavar="NAME", help="probe: " + ", ".join(PROBE_NAMES))
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a stored run: id, unique prefix of its id or hash, or its directory")
    source.add_argument("--model", help="a registered model name (see `reslab models`)")
    p.add_argument("--weights", metavar="FILE", help="weights for --model: a model.pt or another codebase's state_dict")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="accept a weights file holding pickled Python objects (unpickling can run code: trusted files only)",
    )
    p.add_argument("--seed", type=int, default=0, help="initializes --model when no --weights are given")
    p.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE", help="model option, repeatable")
    p.add_argument("--data", help="dataset (see `reslab data ls`); with --run, default: the run's own")
    p.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE", help="dataset option, repeatable")
    p.add_argument("--data-dir", help="folder searched first for dataset files")
    p.add_argument("--split", choices=("test", "val", "train"), default="test", help="which split (default test)")
    p.add_argument("--samples", type=int, help="examples the probe uses (default: the probe's own)")
    p.add_argument("--probe-opt", action="append", default=[], metavar="KEY=VALUE", help="probe setting, e.g. steps=21")
    p.add_argument("--out", help="folder for results, figures and page (default reslab-probe/NAME)")
    p.add_argument("--store", help="run store folder (default $RESLAB_HOME, else ~/.reslab)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda[:N]")
    p.set_defaults(func=run, computes=True)


def _from_run(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from ..errors import ConfigError
    from ..runs import RunStore

    if args.weights:
        raise ConfigError("--weights goes with --model (a stored run loads its own model.pt)")
    record = RunStore(args.store).get(args.run)
    data = {"name": args.data or record.config.data, "dir": args.data_dir or record.config.data_dir}
    data["options"] = dict(record.config.data_options) if not args.data else {}
    data["options"].update(_pairs(args.data_opt, "--data-opt"))
    context = {"run": record.id, "model": record.config.model, "run directory": str(record.dir)}
    return record.load_model(), data, context


def _from_model(args: argparse.Namespace, dataset) -> tuple[Any, dict[str, Any]]:
    import torch

    from ..models import load_weights
    from ..train import TrainConfig
    from ..train.setup import build_model

    config = TrainConfig(model=args.model, data=args.data, model_options=_pairs(args.model_opt, "--model-opt"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net, options = build_model(config, dataset)
    context = {"model": args.model, "model options": options, "weights": f"none (initialized with seed {args.seed})"}
    if args.weights:
        loaded = load_weights(net, args.weights, allow_pickle=args.allow_pickle)
        context["weights"] = f"{loaded.path} (matched by {loaded.matched_by}, {loaded.tensors} tensors)"
    return net.eval(), context


def _pairs(pairs: list[str], what: str) -> dict[str, Any]:
    from .train import parse_pairs

    return parse_pairs(pairs, what)


def _examples(dataset, split: str, n: int):
    from ..data import eval_batches
    from ..errors import ConfigError

    part = getattr(dataset, split)
    if part is None or len(part) == 0:
        raise ConfigError(f"{dataset.name} has no {split} split here (e.g. val_size=0); choose another --split")
    if n < 1:
        raise ConfigError(f"--samples must be >= 1, got {n}")
    part = part.take(slice(0, n))
    return next(eval_batches(part, len(part), mean=dataset.mean, std=dataset.std))


def _accepts(net, x, context: dict[str, Any]) -> None:
    """One forward pass: a net built for other inputs fails here with one line, not inside a probe."""
    import torch

    from ..errors import ConfigError

    flags = [(m, m.training) for m in net.modules()]
    try:
        net.eval()
        with torch.no_grad():
            net(x[:2])
    except (RuntimeError, ValueError, IndexError) as exc:
        raise ConfigError(
            f"{context['model']} does not accept these inputs of shape {list(x.shape[1:])} "
            f"({str(exc).splitlines()[0][:160]}); check --model-opt / --data-opt"
        ) from None
    finally:
        for m, flag in flags:
            m.training = flag


def _load(args: argparse.Namespace, samples: int):
    """The net (a block-protocol net), the examples and what the page says about them."""
    from ..data import load_dataset
    from ..errors import ConfigError
    from ..models import follows_block_protocol
    from ..probes import as_block_net

    if args.run:
        net, data, context = _from_run(args)
    else:
        if not args.data:
            raise ConfigError("--model needs --data (the dataset the probe runs on)")
        data = {"name": args.data, "dir": args.data_dir, "options": _pairs(args.data_opt, "--data-opt")}
    dataset = load_dataset(data["name"], data["dir"], **data["options"])
    if not args.run:
        net, context = _from_model(args, dataset)
    x, y = _examples(dataset, args.split, samples)
    _accepts(net, x, context)
    if not follows_block_protocol(net):
        net = as_block_net(net, x[:2])
        context["blocks"] = f"{len(net.blocks)}, discovered in its traced graph"
    context["data"] = f"{data['name']} {args.split} split, first {len(x)} examples" + (
        f" ({', '.join(f'{k}={v}' for k, v in data['options'].items())})" if data["options"] else ""
    )
    return net, x, y, context


def run(args: argparse.Namespace) -> int:
    from ..probes.runner import GRID_ROWS, probe_spec, run_probe, settings_for
    from ..report.probe_page import write_probe_page
    from ..train.setup import resolve_device

    spec = probe_spec(args.name)
    settings = settings_for(spec, _pairs(args.probe_opt, "--probe-opt"))
    net, x, y, context = _load(args, args.samples or spec.samples)
    device = resolve_device(args.device)
    net, x, y = net.to(device), x.to(device), y.to(device)
    context["device"] = str(device)
    out = Path(args.out or Path("reslab-probe") / args.name)
    print(f"probe {args.name}: {context['model']} ({len(net.blocks)} blocks), {context['data']}", flush=True)
    if (out / GRID_ROWS).exists():
        print("a grid was interrupted here: its rows computed with this net, data and settings are reused", flush=True)
    try:
        done = run_probe(args.name, net, x, y, out, settings, context)
    except KeyboardInterrupt:
        if (out / GRID_ROWS).exists():
            print("stopped; the finished grid rows are saved: run the same command again to continue", file=sys.stderr)
        raise
    print(
        "same net, data and settings as before: results reused"
        if done.reused
        else f"computed in {done.manifest['seconds']:.1f} s",
        flush=True,
    )
    for result in done.manifest["results"].values():
        print(out / f"{result['file']}.npz")
    for path in write_probe_page(out):
        print(path)
    return 0
