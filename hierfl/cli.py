"""``hierfl`` commands: ``run`` (the method through Flower on this machine) and ``profile``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from hierfl.config import HierConfig, parse_overrides, read_toml
from hierfl.errors import ConfigError, HierflError

# Small settings that run anything end to end in about a minute on a laptop CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "tiny": {"clients": 2, "experiences": 2, "rounds": 2, "local-epochs": 1},
}

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
        "--cl", help="continual-learning strategies joined by '+': naive, edge-replay, cloud-replay"
    )
    p.add_argument(
        "--device",
        help="cpu, cuda or auto for both edge and cloud "
        "(edge-device=... / cloud-device=... set them apart)",
    )
    p.add_argument("--out", help="run folder (default runs/<timestamp>)")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hierfl", description="Hierarchical edge-cloud training with early exits."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _profile_parser(sub)
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


def resolve_config(args: argparse.Namespace) -> HierConfig:
    """Defaults < preset < --config file < flags < key=value overrides; then validate."""
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
        config = resolve_config(args)
        from hierfl.app.launch import run_local

        print(
            f"hierfl: {config.clients} edges, {config.mode}, {config.scenario}, "
            f"{config.experiences} experiences x {config.rounds} rounds -> {config.out}",
            flush=True,
        )
        out = run_local(config)
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
