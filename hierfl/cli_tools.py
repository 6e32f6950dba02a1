"""``hierfl profile``, ``hierfl plan`` and ``hierfl app``: a model's cuts measured, the runtime
model's plan, and the code-free Flower app a deployment runs.

Like ``hierfl run`` they take ``--config FILE.toml`` and ``key=value`` overrides (flags win):
``model``, ``input-shape``, ``num-classes`` and ``exit-head`` for both; ``bitrate``,
``downlink-bitrate``, ``latency``, ``batch-size`` and ``clients`` for ``plan``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from hierfl.analysis.fleet import Device, FleetPlan, format_fleet, plan_fleet
from hierfl.analysis.plan_text import format_plan, format_settings, plan_to_dict, recommendation
from hierfl.analysis.planner import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BOTTLENECKS,
    DEFAULT_CLOUD_FLOPS,
    DEFAULT_EDGE_FLOPS,
    DEFAULT_SAMPLES,
    PlanSettings,
    measure_cuts,
    plan_cuts,
)
from hierfl.config import HierConfig
from hierfl.errors import ConfigError, UnknownNameError
from hierfl.options import parse_overrides, parse_shape, read_toml
from hierfl.registry import MODELS
from hierfl.resolve import resolve

DEFAULT_INPUTS = {"small-cnn": "1x8x8", "vgg16": "3x32x32", "resnet18": "3x32x32"}
_CONFIG_HELP = "TOML file with keys (flat or [tool.flwr.app.config]); flags win over it"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help=_CONFIG_HELP)
    p.add_argument("--model", help="registered model name (default small-cnn)")
    p.add_argument("--input", help="input shape CxHxW (default: the model's own)")
    p.add_argument("--classes", help="number of classes (default 10)")
    p.add_argument("--exit-head", help="conv or mlp (default: the model's own)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config keys")


def add_profile_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="activation size, parameters and FLOPs of a model at every cut",
        description="Print the cut profile of a model: activation shape and bytes per sample, "
        "raw input bytes, and parameters and forward FLOPs of the edge segment plus exit and of "
        "the cloud segment (torch.utils.flop_counter); with a bottleneck (--bottleneck, "
        "--code-bits) the codes' bytes and the encoder's and decoder's parameters and FLOPs.",
    )
    _common(p)
    p.add_argument("--bottleneck", help="channels of a bottleneck at every cut (default 0: none)")
    p.add_argument("--code-bits", help="bits per bottleneck code: 8 (default) or 4")


def add_plan_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="predict epoch time of every mode at every cut and recommend a cut",
        description="Predict seconds per epoch of hierarchical, split, cloud and edge-only "
        "training at every cut of a model, with and without a learned bottleneck at the cut "
        "(hierfl.analysis.performance: FLOPs over FLOP/s, backward = 2x forward; activations "
        "fp32 or the bottleneck's codes, raw inputs as uint8), estimate the edge's training "
        "memory, and "
        "recommend the (cut, bottleneck) that trains hierarchically fastest within "
        "--edge-memory. The plan knows bytes and FLOPs, not accuracy: benchmarks/bottleneck.py "
        "measures what a bottleneck costs in accuracy.",
    )
    _common(p)
    _fleet_flags(p)
    p.add_argument(
        "--bottlenecks",
        default=",".join(map(str, DEFAULT_BOTTLENECKS)),
        help="bottleneck widths to compare at every cut, comma-separated (0: none; default "
        "%(default)s)",
    )
    p.add_argument("--code-bits", help="bits per bottleneck code: 8 (default) or 4")
    p.add_argument(
        "--raw-bytes",
        help="bytes of one raw input as cloud mode uploads it (default: its uint8 pixels; "
        "give a PNG or JPEG file's size to compare against those)",
    )
    p.add_argument(
        "--device",
        action="append",
        metavar="SLOWDOWN:BITRATE[:LATENCY]",
        help="plan a fleet: one edge device per flag, SLOWDOWN times slower than --edge-flops "
        "on its own link (e.g. --device 1:10e6 --device 4:1e6 --device 16:0.25e6); the plan "
        "gives each device its own cut and compares the best single cut",
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON")


def _fleet_flags(p: argparse.ArgumentParser) -> None:
    """The link, the devices and the workload of ``hierfl plan``. Numbers are read as text and
    checked later, so that a bad value gives one line naming its flag (argparse's own errors
    print the usage too)."""
    p.add_argument("--bitrate", help="uplink bits per second, e.g. 1e6 (or bitrate=...)")
    p.add_argument("--downlink-bitrate", help="downlink bits per second (default: --bitrate)")
    p.add_argument("--latency", help="one-way latency in seconds (default 0)")
    p.add_argument(
        "--edge-flops",
        default=str(DEFAULT_EDGE_FLOPS),
        help=f"edge FLOP/s sustained (default {DEFAULT_EDGE_FLOPS:.0e}: a Raspberry-Pi-class CPU)",
    )
    p.add_argument(
        "--cloud-flops",
        default=str(DEFAULT_CLOUD_FLOPS),
        help=f"cloud FLOP/s sustained (default {DEFAULT_CLOUD_FLOPS:.0e}: one data-centre GPU)",
    )
    p.add_argument("--edge-memory", help="edge memory in bytes for training (default: unlimited)")
    p.add_argument("--batch-size", help=f"batch size (default {DEFAULT_BATCH_SIZE})")
    p.add_argument("--samples", default=str(DEFAULT_SAMPLES), help="samples per edge per epoch")
    p.add_argument("--clients", help="edges sharing the cloud (default 1)")


def _settings(args: argparse.Namespace, **more: str | None) -> dict[str, Any]:
    """Keys from ``--config`` < ``key=value`` (typed as a ``HierConfig`` would type them),
    then the flags given, as text (checked later under the flag's own name): the common ones
    and ``more`` (``downlink_bitrate=...`` for ``downlink-bitrate``)."""
    flags = {
        "model": args.model,
        "input-shape": args.input,
        "num-classes": args.classes,
        "exit-head": args.exit_head,
        **{k.replace("_", "-"): v for k, v in more.items()},
    }
    explicit: dict[str, Any] = read_toml(args.config) if args.config else {}
    explicit.update(parse_overrides(args.overrides))
    config = HierConfig.from_mapping(explicit)  # unknown keys and wrong types: one line
    values = {
        key: getattr(config, key.replace("-", "_"))
        for key in (k.replace("_", "-") for k in explicit if "." not in k)
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    return values


def _model_and_shape(args: argparse.Namespace, values: dict[str, Any]) -> tuple[str, tuple]:
    model = str(values.get("model", "small-cnn"))
    try:
        MODELS.check(model)
    except UnknownNameError as exc:
        raise UnknownNameError("--model", model, exc.allowed) from None
    text = str(values.get("input-shape") or DEFAULT_INPUTS.get(model, "3x32x32"))
    return model, parse_shape("--input", text)


def _classes(values: dict[str, Any]) -> int:
    return int(number("--classes", str(values.get("num-classes") or 10), integer=True))


def profile(args: argparse.Namespace) -> None:
    from hierfl.analysis.profile import format_profiles, profile_model

    values = _settings(args, bottleneck=args.bottleneck, code_bits=args.code_bits)
    model, shape = _model_and_shape(args, values)
    head = values.get("exit-head") or None
    width = int(number("--bottleneck", str(values.get("bottleneck", 0)), integer=True, zero=True))
    bits = _code_bits(values)
    profiles = profile_model(
        model, shape, _classes(values), exit_head=head, bottleneck=width, code_bits=bits
    )
    print(format_profiles(profiles))


def _code_bits(values: dict[str, Any]) -> int:
    bits = int(number("--code-bits", str(values.get("code-bits", 8)), integer=True))
    if bits not in (4, 8):
        raise ConfigError("--code-bits", f"must be 4 or 8, got {bits}")
    return bits


def _widths(text: str) -> tuple[int, ...]:
    """``--bottlenecks 0,4,16``: the widths to compare, each an integer >= 0."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError("--bottlenecks", "expected comma-separated widths such as 0,4,16")
    return tuple(int(number("--bottlenecks", item, integer=True, zero=True)) for item in items)


def number(flag: str, text: str, *, integer: bool = False, zero: bool = False) -> float:
    """Parse ``text`` as a finite number > 0 (>= 0 if ``zero``; an int if ``integer``).

    Raises:
        ConfigError: naming ``flag``, so that the one-line message says which flag to fix.
    """
    kind = "an integer" if integer else "a number"
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(flag, f"expected {kind}, got {text!r}") from None
    if not math.isfinite(value) or (integer and not value.is_integer()):
        raise ConfigError(flag, f"expected {kind}, got {text!r}")
    if value < 0 or (value == 0 and not zero):
        raise ConfigError(flag, f"must be {'>=' if zero else '>'} 0, got {text}")
    return value


def plan(args: argparse.Namespace) -> None:
    values = _settings(
        args,
        bitrate=args.bitrate,
        downlink_bitrate=args.downlink_bitrate,
        latency=args.latency,
        batch_size=args.batch_size,
        clients=args.clients,
        code_bits=args.code_bits,
    )
    model, shape = _model_and_shape(args, values)
    devices = [Device.parse(text) for text in args.device or ()]
    if devices and not values.get("bitrate"):
        values["bitrate"] = devices[0].bitrate_bps  # each device plans on its own link
    settings = _plan_settings(args, values)
    head = values.get("exit-head") or None
    bits = _code_bits(values)
    widths = _widths(args.bottlenecks)
    cuts = measure_cuts(
        model, shape, _classes(values), exit_head=head, bottlenecks=widths, code_bits=bits
    )
    if devices:
        _print_fleet(plan_fleet(cuts, devices, settings), as_json=args.json)
        return
    result = plan_cuts(cuts, settings)
    if args.json:
        print(json.dumps(plan_to_dict(result), indent=2))
        return
    print(f"{model} on {'x'.join(map(str, shape))}: {format_settings(settings)}")
    print(format_plan(result.rows, result.recommended))
    print(recommendation(result))


def _print_fleet(fleet: FleetPlan, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(dataclasses.asdict(fleet), indent=2))
        return
    print(format_fleet(fleet))


def _plan_settings(args: argparse.Namespace, values: dict[str, Any]) -> PlanSettings:
    """The link, devices and workload of ``hierfl plan``, each checked under its flag."""
    if not values.get("bitrate"):
        raise ConfigError("--bitrate", "needed: the uplink's bits per second, e.g. --bitrate 1e6")
    downlink = values.get("downlink-bitrate") or None
    memory = args.edge_memory
    batch_size = str(values.get("batch-size", DEFAULT_BATCH_SIZE))
    return PlanSettings(
        bitrate_bps=number("--bitrate", str(values["bitrate"])),
        downlink_bps=None if downlink is None else number("--downlink-bitrate", str(downlink)),
        latency_s=number("--latency", str(values.get("latency", 0)), zero=True),
        edge_flops=number("--edge-flops", args.edge_flops),
        cloud_flops=number("--cloud-flops", args.cloud_flops),
        edge_memory_bytes=None if memory is None else number("--edge-memory", memory),
        batch_size=int(number("--batch-size", batch_size, integer=True)),
        samples=int(number("--samples", args.samples, integer=True)),
        clients=int(number("--clients", str(values.get("clients", 1)), integer=True)),
        raw_bytes_per_sample=None
        if args.raw_bytes is None
        else number("--raw-bytes", args.raw_bytes),
        **_exchange_settings(values),
    )


def _exchange_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The weight exchange of the plan: the run's keys as given (``weight-codec=...``, ...), or
    their defaults; ``rounds=`` is the number of exchanges an epoch (default 1)."""
    defaults = HierConfig()
    keys = ("weight-codec", "weight-density", "weight-values", "sync-every")
    out = {k.replace("-", "_"): values.get(k, getattr(defaults, k.replace("-", "_"))) for k in keys}
    out["rounds"] = int(values.get("rounds", 1))
    return out


def add_app_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app",
        help="write the code-free Flower app to start with flwr run on a deployment",
        description="Write DIR/pyproject.toml: a Flower app whose ServerApp and ClientApp are "
        "the installed hierfl's, with the given keys as its run-config defaults, and no code. "
        "hierfl-client runs only such an app (or one pinned with --allow-app-hash); start it "
        "with: flwr run DIR CONNECTION --stream [--run-config ...].",
    )
    p.add_argument("dir", help="folder to write (created; its pyproject.toml is replaced)")
    p.add_argument("--config", help=_CONFIG_HELP)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config keys")


def app(args: argparse.Namespace) -> None:
    from hierfl.deploy.launch import write_app  # here: it imports Flower, which --help need not

    layers = [read_toml(args.config) if args.config else {}, parse_overrides(args.overrides)]
    folder = Path(args.dir)
    write_app(folder, resolve(layers))
    print(f"hierfl: app written to {folder}; start it with: flwr run {folder} CONNECTION --stream")
