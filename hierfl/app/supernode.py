"""``hierfl-client``: one edge device, as a Flower SuperNode with hierfl's node config."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hierfl-client",
        description="Start one hierfl edge device (a Flower SuperNode). Flags not listed here "
        "are passed to flower-supernode unchanged.",
    )
    p.add_argument("--superlink", default="127.0.0.1:8000", help="SuperLink Fleet API HOST:PORT")
    p.add_argument("--partition-id", type=int, required=True, help="this device's partition")
    p.add_argument("--num-partitions", type=int, required=True, help="number of edge devices")
    p.add_argument("--data-dir", default="", help="local dataset folder (not needed for digits)")
    p.add_argument(
        "--state-dir",
        default="",
        help="node-local folder for the cached stream, optimizer and cursor "
        "(default ~/.cache/hierfl/node-<partition-id>)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="local ClientAppIo port "
        "(default 9094 + partition id; must differ per SuperNode on one host)",
    )
    sec = p.add_mutually_exclusive_group(required=True)
    sec.add_argument("--insecure", action="store_true", help="plain HTTP (loopback/tests only)")
    sec.add_argument("--root-certificates", help="CA certificate to verify the SuperLink (TLS)")
    p.add_argument("--auth-key", help="private key for SuperNode authentication")
    return p


def _fail(parser: argparse.ArgumentParser, key: str, message: str) -> None:
    parser.exit(2, f"hierfl-client: error: {key}: {message}\n")


def supernode_argv(args: argparse.Namespace, extra: list[str]) -> list[str]:
    state_dir = args.state_dir or str(
        Path.home() / ".cache" / "hierfl" / f"node-{args.partition_id}"
    )
    node_config = (
        f"partition-id={args.partition_id} num-partitions={args.num_partitions} "
        f'state-dir="{state_dir}" data-dir="{args.data_dir}"'
    )
    port = args.port if args.port is not None else 9094 + args.partition_id
    argv = [
        "flower-supernode",
        "--superlink",
        args.superlink,
        "--node-config",
        node_config,
        "--port",
        str(port),
    ]
    if args.insecure:
        argv.append("--insecure")
    else:
        argv += ["--root-certificates", args.root_certificates]
    if args.auth_key:
        argv += ["--auth-supernode-private-key", args.auth_key]
    return argv + extra


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.num_partitions <= 0:
        _fail(parser, "--num-partitions", f"must be > 0, got {args.num_partitions}")
    if not 0 <= args.partition_id < args.num_partitions:
        _fail(
            parser,
            "--partition-id",
            f"must be in [0, {args.num_partitions}), got {args.partition_id}",
        )
    for key, path in (
        ("--root-certificates", args.root_certificates),
        ("--auth-key", args.auth_key),
    ):
        if path and not Path(path).is_file():
            _fail(parser, key, f"no such file: {path}")
    if args.data_dir and not Path(args.data_dir).is_dir():
        _fail(parser, "--data-dir", f"no such folder: {args.data_dir}")
    # flower-supernode spawns flower-superexec by name: make this environment's bin/ findable.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    sys.argv = supernode_argv(args, extra)
    from flwr.supernode.cli import flower_supernode

    flower_supernode()


if __name__ == "__main__":
    main()
