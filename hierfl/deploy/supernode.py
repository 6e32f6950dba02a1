"""``hierfl-client``: one edge device, as a Flower SuperNode with hierfl's node config."""

from __future__ import annotations

import argparse
import atexit
import os
import re
import secrets
import sys
from dataclasses import fields
from pathlib import Path

from hierfl.app.flower_internals import (
    SUPEREXEC_POLL_ENV,
    check_flower_version,
    run_supernode,
    set_supernode_poll,
)
from hierfl.deploy import app_pin, zygote
from hierfl.deploy.worker_supervisor import WorkerSupervisor
from hierfl.edge.policy import EdgePolicy
from hierfl.util.paths import default_state_dir
from hierfl.util.storage import private_dir


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
    p.add_argument(
        "--poll-interval",
        type=float,
        default=0.25,
        help="seconds between the SuperNode's polls for new messages (Flower's default is 3; "
        "shorter polls cut the wait for each message at the cost of more idle requests)",
    )
    _policy_flags(p)
    p.add_argument(
        "--no-warm-clientapp",
        action="store_true",
        help="let Flower start a fresh flwr-clientapp process per message (about 1.4 s of CPU "
        "each) instead of forking one from a warm process (hierfl.deploy.zygote)",
    )
    p.add_argument(
        "--no-edge-worker",
        action="store_true",
        help="run every message in Flower's fresh ClientApp process (imports torch each time) "
        "instead of a long-lived edge worker",
    )
    return p


def _policy_flags(p: argparse.ArgumentParser) -> None:
    """The device owner's rules, one flag per rule of ``EdgePolicy``, and the apps it runs."""
    pol = p.add_argument_group(
        "edge policy", "what this device accepts from a run; no run config can override it"
    )
    for rule in fields(EdgePolicy):
        flag, help = "--" + rule.name.replace("_", "-"), rule.metadata["help"]
        if isinstance(rule.default, bool):
            pol.add_argument(flag, action="store_true", help=help)
        else:
            pol.add_argument(flag, type=float, default=rule.default, help=help)
    pol.add_argument(
        "--allow-app-hash",
        action="append",
        default=[],
        metavar="SHA256",
        help="also run the Flower app (FAB) with this SHA-256 (repeatable); by default only "
        "hierfl's code-free app (hierfl app DIR) runs here",
    )


def _fail(parser: argparse.ArgumentParser, key: str, message: str) -> None:
    parser.exit(2, f"hierfl-client: error: {key}: {message}\n")


def state_dir_of(args: argparse.Namespace) -> str:
    return args.state_dir or str(default_state_dir(args.partition_id))


def node_config_text(entries: dict[str, object]) -> str:
    """``--node-config`` for flower-supernode: ``key=value`` pairs that no value can break out
    of (a quote, backslash or control character could inject other keys: refused)."""
    parts = []
    for key, value in entries.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            value = str(value)
            if any(c in value for c in '"\\') or any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise ValueError(
                    f"{key}: quotes, backslashes and control characters are not "
                    f"allowed in a node-config value: {value!r}"
                )
            text = f'"{value}"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def policy_of(args: argparse.Namespace) -> EdgePolicy:
    """The device owner's policy from hierfl-client's flags."""
    return EdgePolicy(**{rule.name: getattr(args, rule.name) for rule in fields(EdgePolicy)})


def supernode_argv(
    args: argparse.Namespace, extra: list[str], worker: tuple[str, bytes] | None = None
) -> list[str]:
    """flower-supernode's command line; ``worker`` is the edge worker's (address, key): only
    its address goes into the node config, the key stays in its 0600 file."""
    entries: dict[str, object] = {
        "partition-id": args.partition_id,
        "num-partitions": args.num_partitions,
        "state-dir": state_dir_of(args),
        "data-dir": args.data_dir,
        **policy_of(args).node_config(),
    }
    if worker is not None:
        entries["edge-worker"] = worker[0]
    node_config = node_config_text(entries)
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


def _start_worker(state_dir: Path) -> tuple[str, bytes]:
    """Start the node's edge worker under a supervisor that restarts it if it dies; both stop
    when this process exits (or dies)."""
    key = secrets.token_bytes(32)
    supervisor = WorkerSupervisor(state_dir, key)
    address = supervisor.start()
    atexit.register(supervisor.stop)
    return address, key


def _start_zygote(state_dir: Path) -> None:
    """A warm ``flwr-clientapp`` (``hierfl.deploy.zygote``), first on the SuperNode's PATH;
    stopped when this process exits (or, if it dies, by itself)."""
    proc, bin_dir = zygote.start(private_dir(state_dir))
    atexit.register(proc.terminate)
    os.environ["PATH"] = str(bin_dir) + os.pathsep + os.environ["PATH"]


def poll_every(seconds: float) -> None:
    """Make the SuperNode poll for messages (and for its ClientApp's reply) every ``seconds``
    (Flower's own wait is 3 s); with a Flower whose loop cannot be changed, say so."""
    if not set_supernode_poll(seconds):
        print("hierfl-client: cannot set the SuperNode's poll interval here", file=sys.stderr)


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
    for rule in fields(EdgePolicy):
        value = getattr(args, rule.name)
        if not isinstance(value, bool) and not 0 <= value < float("inf"):
            flag = "--" + rule.name.replace("_", "-")
            _fail(parser, flag, f"must be a finite number >= 0, got {value}")
    for key, value in (("--state-dir", args.state_dir), ("--data-dir", args.data_dir)):
        try:
            node_config_text({key: value})
        except ValueError as exc:
            _fail(parser, key, str(exc))
    for digest in args.allow_app_hash:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            _fail(parser, "--allow-app-hash", f"expected a SHA-256 in hex, got {digest!r}")
    if not 0.01 <= args.poll_interval <= 60:
        _fail(parser, "--poll-interval", f"must be in [0.01, 60] seconds, got {args.poll_interval}")
    # flower-supernode spawns flower-superexec by name: make this environment's bin/ findable.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    # flower-superexec (a child) polls for ClientApp tasks; Flower's default is once a second.
    os.environ.setdefault(SUPEREXEC_POLL_ENV, str(min(args.poll_interval, 1.0)))
    worker = None if args.no_edge_worker else _start_worker(Path(state_dir_of(args)))
    if not args.no_warm_clientapp:
        _start_zygote(Path(state_dir_of(args)))
    sys.argv = supernode_argv(args, extra, worker)
    check_flower_version(lambda line: print(f"hierfl-client: warning: {line}", file=sys.stderr))
    poll_every(args.poll_interval)
    app_pin.install(app_pin.AppPin(hashes=frozenset(h.lower() for h in args.allow_app_hash)))
    run_supernode()


if __name__ == "__main__":
    main()
