"""``hierfl`` commands: ``run`` (the method through Flower or in process), ``profile``, ``plan``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from hierfl.cli_tools import add_app_parser, add_plan_parser, add_profile_parser
from hierfl.config import PRESETS, HierConfig, core_fields
from hierfl.errors import ConfigError, HierflError, RunFailed
from hierfl.options import parse_overrides, read_toml
from hierfl.registry import AGGREGATORS, CONTINUAL, MODELS, PARTITIONERS, SCENARIOS
from hierfl.registry.settings import declared_settings
from hierfl.resolve import resolve
from hierfl.results.summary import ENGINES

# Shorthand flags of ``hierfl run``: flag -> config key. Their help, default and allowed values
# come from the key's own metadata (``hierfl.config``), like docs/reference.md's table.
SHORTHANDS = {
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
    "exit-head": "exit-head",
    "cl": "cl",
    "bitrate": "bitrate",
    "downlink-bitrate": "downlink-bitrate",
    "latency": "latency",
    "edge-slowdown": "edge-slowdown",
    "codec": "codec",
    "out": "out",
}
EXIT_RUN_FAILED = 3  # the run started and stopped on a systematic failure


def _registries_epilog() -> str:
    """What is registered (models with their cuts, scenarios, aggregators, continual methods,
    partitioners), each with its settings: the registries themselves, not a copied list."""
    lines = ["registered plug-ins (set a plug-in's settings with NAME.SETTING=value):"]
    lines.append("  model:")
    lines += [f"    {n}: cuts {', '.join(MODELS.get(n).cut_points)}" for n in MODELS.names()]
    for title, registry in (
        ("scenario", SCENARIOS),
        ("strategy", AGGREGATORS),
        ("cl", CONTINUAL),
        ("partition", PARTITIONERS),
    ):
        lines.append(f"  {title}:")
        for name in registry.names():
            settings = ", ".join(f"{name}.{k}" for k in declared_settings(name))
            summary = registry.plugin(name).summary
            lines.append(f"    {name}: {summary}" + (f" [{settings}]" if settings else ""))
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """An epilog computed only when help is asked for: listing the registries imports the
    plug-ins, which a plain ``hierfl run`` start need not pay for."""

    def __init__(self, *args: Any, lazy_epilog: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_epilog = lazy_epilog

    def format_help(self) -> str:
        if self.lazy_epilog is not None:
            self.epilog = self.lazy_epilog()
        return super().format_help()


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="train: through Flower on this machine (SuperLink + one SuperNode per edge), or "
        "in process",
        description="Run hierarchical training end to end and write the run folder. With the "
        "flower engine: a flower-superlink, one hierfl-client per edge and `flwr run`, all on "
        "127.0.0.1. Every key of docs/reference.md can be given as key=value.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        lazy_epilog=_registries_epilog,
    )
    p.add_argument("--config", help="TOML file with keys (flat or [tool.flwr.app.config])")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="flower",
        help="flower (default): a SuperLink and one hierfl-client per edge on 127.0.0.1; "
        "inprocess: the same orchestrator, strategy and edge code in this process (fast for "
        "accuracy sweeps; its wall times are not a deployment's); simulation: Flower's "
        "Simulation Engine, virtual edges in Ray actors (many edges; pip install -e "
        "'.[simulation]')",
    )
    for flag, key in SHORTHANDS.items():
        p.add_argument(f"--{flag}", help=_help(key))
    p.add_argument(
        "--device",
        help="cpu, cuda or auto for both edge and cloud "
        "(edge-device=... / cloud-device=... set them apart)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (never a folder that is not a run folder)",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the interrupted run whose run folder is DIR, from its last checkpoint "
        "(its config is reused; key=value may change timeouts, threads and devices)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="any config key")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hierfl", description="Hierarchical edge-cloud training with early exits."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _run_parser(sub)
    add_profile_parser(sub)
    add_plan_parser(sub)
    add_app_parser(sub)
    return parser


def resolve_config(args: argparse.Namespace) -> HierConfig:
    """Defaults < preset < --config file < flags < key=value overrides; then the continual
    methods' own defaults for keys left at hierfl's; then validate (``hierfl.resolve``).

    With ``--resume DIR`` the interrupted run's own config (from its checkpoint) replaces the
    defaults, the preset and the config file, and the run folder stays DIR.
    """
    if args.resume:
        return _resume_config(args)
    layers = [PRESETS[args.preset], read_toml(args.config) if args.config else {}]
    layers += [_flags(args), parse_overrides(args.overrides)]
    base = None
    if not any("out" in layer for layer in layers):  # a fresh, stamped run folder
        base = HierConfig.from_mapping({"out": f"runs/{time.strftime('%Y%m%d-%H%M%S')}"})
    return resolve(layers, base=base, say=_say, warn=lambda line: _say(f"warning: {line}"))


def _say(line: str) -> None:
    print(f"hierfl: {line}", flush=True)


def _dest(flag: str) -> str:
    return flag.replace("-", "_")


def _help(key: str) -> str:
    """A flag's help from its config key's metadata: what it is, its default, what it allows."""
    field = next(f for f in core_fields() if f.name == key.replace("-", "_"))
    meta = field.metadata
    default = f"default {field.default}" if field.default not in ("", None) else "default: empty"
    if meta.get("choices"):
        default += "; " + ", ".join(str(c) for c in meta["choices"] if c != "")
    elif meta.get("registry"):
        default += f"; a registered {meta['registry']}, listed below"
    return f"{meta['help']} ({default}; key {key})"


def _flags(args: argparse.Namespace) -> dict[str, str]:
    flags = {key: getattr(args, _dest(flag)) for flag, key in SHORTHANDS.items()}
    if args.device is not None:
        flags.update({"edge-device": args.device, "cloud-device": args.device})
    return {k: v for k, v in flags.items() if v is not None}


def _resume_config(args: argparse.Namespace) -> HierConfig:
    from hierfl.cloud.checkpoint import check_compatible, load_checkpoint

    if args.config:
        raise ConfigError(
            "config",
            "--resume reuses the interrupted run's own config; pass only what may change "
            "(timeouts, threads, devices) as key=value",
        )
    if args.preset != "default":
        raise ConfigError("preset", "--resume reuses the interrupted run's own config")
    checkpoint = load_checkpoint(args.resume)
    folder = str(Path(args.resume).resolve())
    config = HierConfig.from_mapping(checkpoint.config)
    config = HierConfig.from_mapping(_flags(args), config)
    config = HierConfig.from_mapping(parse_overrides(args.overrides), base=config)
    resume = {"out": folder, "resume": folder, "state-key": checkpoint.state_key}
    config = HierConfig.from_mapping(resume, base=config).validate()
    check_compatible(checkpoint, config)
    return config


def _devices(config: HierConfig) -> str:
    """``--device auto`` says what it chose."""
    if "auto" not in (config.edge_device, config.cloud_device):
        return ""
    from hierfl.train.devices import resolve_device

    edge = resolve_device("edge-device", config.edge_device)
    cloud = resolve_device("cloud-device", config.cloud_device)
    return f"; devices: edge {edge}, cloud {cloud} (auto)"


def _run_engine(engine: str, config: HierConfig) -> Path:
    """Run ``config`` through Flower processes or in this process; return the run folder."""
    if engine == "flower":
        from hierfl.deploy.launch import run_local

        return run_local(config)
    if engine == "simulation":
        from hierfl.deploy.simulate import run_simulated

        return run_simulated(config)
    from hierfl.api import run
    from hierfl.util.logs import setup_logging

    out = Path(config.out).resolve()
    setup_logging(out).info(
        "in-process engine: edges run one after another in this process; wall times are not "
        "a deployment's (use --engine flower for those)"
    )
    run(config, out=out)
    return out


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through run_local's cleanup of Flower processes


def _start(args: argparse.Namespace) -> Path:
    from hierfl.preflight import preflight, prepare_run_folder

    config = resolve_config(args)
    preflight(config)  # the scenario, model and data folder: before any process starts
    out = Path(config.out).resolve()
    prepare_run_folder(out, resume=bool(config.resume), overwrite=args.overwrite)
    print(
        f"hierfl: {config.clients} edges, {config.mode}, {config.scenario}, cl {config.cl}, "
        f"{config.experiences} experiences x {config.rounds} rounds, {args.engine} engine"
        f"{_devices(config)} -> {out}",
        flush=True,
    )
    return _run_engine(args.engine, config)


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Flags and ``key=value`` overrides in any order (``rounds=3 --out X edge-lr=0.1``)."""
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if args.command in ("profile", "plan", "app"):
            from hierfl import cli_tools

            getattr(cli_tools, args.command)(args)
            return 0
        out = _start(args)
    except RunFailed as exc:
        print(f"hierfl: run failed: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
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
