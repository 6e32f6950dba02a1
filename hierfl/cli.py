"""``hierfl`` commands: ``run`` (the method through Flower), ``profile`` and ``plan``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from hierfl.config import HierConfig, parse_overrides, read_toml
from hierfl.errors import ConfigError, HierflError
from hierfl.run_folder import ENGINES

# Small settings that run anything end to end in about a minute on a laptop CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "tiny": {"clients": 2, "experiences": 2, "rounds": 2, "local-epochs": 1},
}

# Scenarios that need no local dataset folder.
BUNDLED_SCENARIOS = ("digits", "synthetic")

# CLI flag -> config key, for the flags that are shorthands.
_FLAGS = {
    "mode": "mode",
    "clients": "clients",
    "scenario": "scenario",
    "experiences": "experiences",
    "rounds": "rounds",
    "epochs": "local-epochs",
    "partition": "partition",
    "seed": "seed",
    "model": "model",
    "cut": "cut",
    "strategy": "strategy",
    "exit_head": "exit-head",
    "cl": "cl",
    "out": "out",
    "bitrate": "bitrate",
    "downlink_bitrate": "downlink-bitrate",
    "latency": "latency",
    "edge_slowdown": "edge-slowdown",
    "codec": "codec",
}


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="train on this machine through Flower (SuperLink + one SuperNode per edge)",
        description="Run hierarchical training end to end: a flower-superlink, one hierfl-client "
        "per edge and `flwr run`, all on 127.0.0.1, then write the run folder.",
    )
    p.add_argument("--config", help="TOML file with keys (flat or [tool.flwr.app.config])")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="flower",
        help="flower (default): a SuperLink and one hierfl-client per edge on 127.0.0.1; "
        "inprocess: the same orchestrator, strategy and edge code in this process (fast for "
        "accuracy sweeps; its wall times are not a deployment's)",
    )
    p.add_argument(
        "--mode", help="hierarchical (default), split, cloud (uploads raw inputs) or edge"
    )
    p.add_argument("--clients", help="number of edge devices (default 3)")
    p.add_argument("--scenario", help="scenario name (default digits)")
    p.add_argument("--experiences", help="experiences in the stream; 1 = all classes at once")
    p.add_argument("--rounds", help="rounds per experience")
    p.add_argument("--epochs", help="local epochs per round on each edge")
    p.add_argument("--partition", help="how training data is split across edges: iid, dirichlet")
    p.add_argument("--seed", help="seed for class order, partitions and initial weights")
    p.add_argument("--model", help="model name (small-cnn)")
    p.add_argument("--cut", help="separation point (block1, block2, block3 for small-cnn)")
    p.add_argument("--strategy", help="edge aggregation strategy (fedavg, fedprox, ...)")
    p.add_argument("--exit-head", help="exit head: the model's own, conv or mlp")
    p.add_argument(
        "--cl",
        help="continual-learning strategies joined by '+': naive, edge-replay, lwf, ewc, "
        "cloud-replay",
    )
    p.add_argument(
        "--device",
        help="cpu, cuda or auto for both edge and cloud "
        "(edge-device=... / cloud-device=... set them apart)",
    )
    p.add_argument("--bitrate", help="emulated uplink bits/s per edge (default 0: no emulation)")
    p.add_argument("--downlink-bitrate", help="emulated downlink bits/s (default: --bitrate)")
    p.add_argument("--latency", help="emulated one-way latency per message, seconds (default 0)")
    p.add_argument("--edge-slowdown", help="emulate edges k times slower (default 1)")
    p.add_argument("--codec", help="uplink activation codec: fp32 (default), fp16, int8")
    p.add_argument("--out", help="run folder (default runs/<timestamp>)")
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the interrupted run whose run folder is DIR, from its last checkpoint "
        "(its config is reused; flags and key=value may change timeouts, threads, devices)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="any config key")


def _profile_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="activation size, parameters and FLOPs of a model at every cut",
        description="Print the cut profile of a model: activation shape and bytes per sample, "
        "raw input bytes, and parameters and forward FLOPs of the edge segment plus exit and of "
        "the cloud segment (torch.utils.flop_counter).",
    )
    p.add_argument("--model", default="small-cnn", help="registered model name")
    p.add_argument("--input", default="", help="input shape CxHxW (default: the model's own)")
    p.add_argument("--classes", type=int, default=10, help="number of classes")
    p.add_argument("--exit-head", default=None, help="conv or mlp (default: the model's own)")


def _plan_parser(sub: argparse._SubParsersAction) -> None:
    from hierfl.planner import (
        DEFAULT_BATCH_SIZE,
        DEFAULT_CLOUD_FLOPS,
        DEFAULT_EDGE_FLOPS,
        DEFAULT_SAMPLES,
    )

    p = sub.add_parser(
        "plan",
        help="predict epoch time of every mode at every cut and recommend a cut",
        description="Predict seconds per epoch of hierarchical, split, cloud and edge-only "
        "training at every cut of a model (hierfl.runtime: FLOPs over FLOP/s, backward = 2x "
        "forward, fp32 on the wire), estimate the edge's training memory, and recommend the cut "
        "that trains hierarchically fastest within --edge-memory.",
    )
    # Numbers are read as text and checked in plan(), so that a bad value gives one line naming
    # its flag (argparse's own errors print the usage too).
    p.add_argument("--model", default="small-cnn", help="registered model name")
    p.add_argument("--input", default="", help="input shape CxHxW (default: the model's own)")
    p.add_argument("--bitrate", required=True, help="uplink bits per second, e.g. 1e6")
    p.add_argument("--downlink-bitrate", help="downlink bits per second (default: --bitrate)")
    p.add_argument("--latency", default="0", help="one-way latency in seconds (default 0)")
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
    p.add_argument(
        "--batch-size", default=str(DEFAULT_BATCH_SIZE), help="batch size (default %(default)s)"
    )
    p.add_argument(
        "--samples",
        default=str(DEFAULT_SAMPLES),
        help="samples per edge per epoch (default %(default)s)",
    )
    p.add_argument("--clients", default="1", help="edges sharing the cloud (default 1)")
    p.add_argument("--classes", default="10", help="number of classes (default 10)")
    p.add_argument("--exit-head", default=None, help="conv or mlp (default: the model's own)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hierfl", description="Hierarchical edge-cloud training with early exits."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _profile_parser(sub)
    _plan_parser(sub)
    return parser


DEFAULT_INPUTS = {"small-cnn": "1x8x8", "vgg16": "3x32x32", "resnet18": "3x32x32"}


def profile(args: argparse.Namespace) -> None:
    from hierfl.config import parse_shape
    from hierfl.models.profile import format_profiles, profile_model
    from hierfl.plugins import MODELS

    MODELS.check(args.model)
    if args.classes <= 0:
        raise ConfigError("classes", f"must be > 0, got {args.classes}")
    shape = parse_shape("input", args.input or DEFAULT_INPUTS.get(args.model, "3x32x32"))
    print(format_profiles(profile_model(args.model, shape, args.classes, exit_head=args.exit_head)))


def _number(flag: str, text: str, *, integer: bool = False, zero: bool = False) -> float:
    """Parse ``text`` as a finite number > 0 (>= 0 if ``zero``; an int if ``integer``).

    Raises:
        ConfigError: naming ``flag``, so that the one-line message says which flag to fix.
    """
    import math

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
    import json

    from hierfl.config import parse_shape
    from hierfl.errors import UnknownNameError
    from hierfl.planner import (
        PlanSettings,
        format_plan,
        format_settings,
        measure_cuts,
        plan_cuts,
        plan_to_dict,
        recommendation,
    )
    from hierfl.plugins import MODELS

    try:
        MODELS.check(args.model)
    except UnknownNameError as exc:
        raise UnknownNameError("--model", args.model, exc.allowed) from None
    shape = parse_shape("--input", args.input or DEFAULT_INPUTS.get(args.model, "3x32x32"))
    downlink = args.downlink_bitrate
    memory = args.edge_memory
    settings = PlanSettings(
        bitrate_bps=_number("--bitrate", args.bitrate),
        downlink_bps=None if downlink is None else _number("--downlink-bitrate", downlink),
        latency_s=_number("--latency", args.latency, zero=True),
        edge_flops=_number("--edge-flops", args.edge_flops),
        cloud_flops=_number("--cloud-flops", args.cloud_flops),
        edge_memory_bytes=None if memory is None else _number("--edge-memory", memory),
        batch_size=int(_number("--batch-size", args.batch_size, integer=True)),
        samples=int(_number("--samples", args.samples, integer=True)),
        clients=int(_number("--clients", args.clients, integer=True)),
    )
    classes = int(_number("--classes", args.classes, integer=True))
    result = plan_cuts(measure_cuts(args.model, shape, classes, exit_head=args.exit_head), settings)
    if args.json:
        print(json.dumps(plan_to_dict(result), indent=2))
        return
    print(f"{args.model} on {'x'.join(map(str, shape))}: {format_settings(settings)}")
    print(format_plan(result.rows, result.recommended))
    print(recommendation(result))


def resolve_config(args: argparse.Namespace) -> HierConfig:
    """Defaults < preset < --config file < flags < key=value overrides; then validate.

    With ``--resume DIR`` the interrupted run's own config (from its checkpoint) replaces the
    defaults, the preset and the config file, and the run folder stays DIR.
    """
    if args.resume:
        return _resume_config(args)
    config = HierConfig.from_mapping(PRESETS[args.preset])
    if args.config:
        config = HierConfig.from_mapping(read_toml(args.config), base=config)
    flags = {key: getattr(args, flag) for flag, key in _FLAGS.items()}
    if args.device is not None:
        flags.update({"edge-device": args.device, "cloud-device": args.device})
    config = HierConfig.from_mapping({k: v for k, v in flags.items() if v is not None}, config)
    config = HierConfig.from_mapping(parse_overrides(args.overrides), base=config)
    if not args.out and not any(o.startswith("out=") for o in args.overrides):
        if not args.config or "out" not in read_toml(args.config):
            stamp = time.strftime("%Y%m%d-%H%M%S")
            config = HierConfig.from_mapping({"out": f"runs/{stamp}"}, base=config)
    return config.validate()


def _resume_config(args: argparse.Namespace) -> HierConfig:
    from hierfl.checkpoint import check_compatible, load_checkpoint

    checkpoint = load_checkpoint(args.resume)
    folder = str(Path(args.resume).resolve())
    config = HierConfig.from_mapping(checkpoint.config)
    flags = {key: getattr(args, flag) for flag, key in _FLAGS.items()}
    config = HierConfig.from_mapping({k: v for k, v in flags.items() if v is not None}, config)
    config = HierConfig.from_mapping(parse_overrides(args.overrides), base=config)
    resume = {"out": folder, "resume": folder, "state-key": checkpoint.state_key}
    config = HierConfig.from_mapping(resume, base=config).validate()
    check_compatible(checkpoint, config)
    return config


def _check_data(config: HierConfig) -> None:
    """Fail before any process starts when a local dataset folder is missing or incomplete."""
    if config.scenario in BUNDLED_SCENARIOS:
        return
    from hierfl.streams import build_benchmark

    build_benchmark(config)  # raises ConfigError("data-dir", <the expected layout>)


def _run_engine(engine: str, config: HierConfig) -> Path:
    """Run ``config`` through Flower processes or in this process; return the run folder."""
    if engine == "flower":
        from hierfl.app.launch import run_local

        return run_local(config)
    from hierfl.api import run
    from hierfl.logs import setup_logging

    out = Path(config.out).resolve()
    setup_logging(out).info(
        "in-process engine: edges run one after another in this process; wall times are not "
        "a deployment's (use --engine flower for those)"
    )
    run(config, out=out)
    return out


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through run_local's cleanup of Flower processes


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if args.command == "profile":
            profile(args)
            return 0
        if args.command == "plan":
            plan(args)
            return 0
        config = resolve_config(args)
        _check_data(config)
        print(
            f"hierfl: {config.clients} edges, {config.mode}, {config.scenario}, "
            f"{config.experiences} experiences x {config.rounds} rounds, {args.engine} engine "
            f"-> {config.out}",
            flush=True,
        )
        out = _run_engine(args.engine, config)
    except HierflError as exc:
        print(f"hierfl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hierfl: interrupted; Flower processes stopped", file=sys.stderr)
        return 130
    print(f"hierfl: run folder {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
