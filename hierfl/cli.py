"""``hierfl`` commands: ``run`` (the whole method through Flower on this machine)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from hierfl.config import HierConfig, parse_overrides, read_toml
from hierfl.errors import HierflError

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
    p.add_argument("--mode", help="training mode (hierarchical)")
    p.add_argument("--clients", help="number of edge devices (default 3)")
    p.add_argument("--scenario", help="scenario name (default digits)")
    p.add_argument("--experiences", help="experiences in the stream; 1 = all classes at once")
    p.add_argument("--rounds", help="rounds per experience")
    p.add_argument("--epochs", help="local epochs per round on each edge")
    p.add_argument("--partition", help="how training data is split across edges (iid)")
    p.add_argument("--seed", help="seed for class order, partitions and initial weights")
    p.add_argument("--model", help="model name (small-cnn)")
    p.add_argument("--cut", help="separation point (block1, block2, block3 for small-cnn)")
    p.add_argument("--strategy", help="edge aggregation strategy (fedavg, fedprox, ...)")
    p.add_argument("--out", help="run folder (default runs/<timestamp>)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="any config key")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hierfl", description="Hierarchical edge-cloud training with early exits."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    return parser


def resolve_config(args: argparse.Namespace) -> HierConfig:
    """Defaults < preset < --config file < flags < key=value overrides; then validate."""
    config = HierConfig.from_mapping(PRESETS[args.preset])
    if args.config:
        config = HierConfig.from_mapping(read_toml(args.config), base=config)
    flags = {key: getattr(args, flag) for flag, key in _FLAGS.items()}
    config = HierConfig.from_mapping({k: v for k, v in flags.items() if v is not None}, config)
    config = HierConfig.from_mapping(parse_overrides(args.overrides), base=config)
    if not args.out and not any(o.startswith("out=") for o in args.overrides):
        if not args.config or "out" not in read_toml(args.config):
            stamp = time.strftime("%Y%m%d-%H%M%S")
            config = HierConfig.from_mapping({"out": f"runs/{stamp}"}, base=config)
    return config.validate()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
