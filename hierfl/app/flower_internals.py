"""Flower's private parts that hierfl relies on, in one place, with one version check.

hierfl pins ``flwr==1.42.0``. Where Flower has no public way to do what hierfl needs, hierfl
reaches into it, and only here:

- the SuperNode's loop (``flwr.supernode.start_client_internal``): its ``time`` module (a
  shorter poll, ``set_supernode_poll``), and its ``_pull_and_store_message`` and
  ``_verify_fab`` (the app check of ``hierfl-client``, ``install_fab_check``);
- the in-process Grid: ``TaskIdentity`` (a ``Message`` needs one outside Flower's runtime),
  ``Run`` and a message's ``Metadata._message_id`` (set as Flower's own grids do);
- ``FLWR_SUPEREXEC_TASK_POLL_INTERVAL``, SuperExec's undocumented poll interval;
- the text ``flwr supernode register`` and ``flwr supernode list --format json`` print;
- a strategy's server-side state, read from its attributes for checkpoints;
- the size of config and metric records as Flower serialises them (``flwr.common.serde``), for
  the control bytes of the traffic accounting.

``check_flower_version`` says at start-up, in one line, when the installed Flower is not the one
these were written for; ``tests/unit/test_flower_internals.py`` pins each of them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, RecordDict
from flwr.common import serde
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.supernode import start_client_internal as _supernode

FLOWER_VERSION = "1.42.0"
SUPEREXEC_POLL_ENV = "FLWR_SUPEREXEC_TASK_POLL_INTERVAL"
_REGISTERED = re.compile(r"SuperNode (\d+) registered")

__all__ = ["Run"]


def flower_version() -> str:
    try:
        return version("flwr")
    except PackageNotFoundError:  # pragma: no cover - hierfl depends on it
        return "none"


def check_flower_version(say: Callable[[str], None]) -> bool:
    """Tell ``say`` (once per call) when the installed Flower differs from ``FLOWER_VERSION``;
    True when it matches."""
    installed = flower_version()
    if installed == FLOWER_VERSION:
        return True
    say(
        f"Flower {installed} is installed, but hierfl was written for flwr=={FLOWER_VERSION}: "
        "the SuperNode poll interval, the app check of hierfl-client, the in-process grid and "
        "strategy checkpoints use Flower's private parts (hierfl.app.flower_internals), which "
        f"may have moved; install flwr=={FLOWER_VERSION}"
    )
    return False


# ---- the SuperNode's loop --------------------------------------------------------------------
class _CappedSleep:
    """A stand-in for the ``time`` module whose ``sleep`` waits at most ``cap`` seconds."""

    def __init__(self, cap: float) -> None:
        self._cap = cap

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self._cap))

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


def set_supernode_poll(seconds: float) -> bool:
    """Make this process's SuperNode poll for messages (and for its ClientApp's reply) every
    ``seconds``; False when this Flower's loop cannot be changed so.

    Flower 1.42 sleeps a hard-coded 3 s between polls when no message is waiting, and 0.5 s
    while its ClientApp works; on average that adds 1.5 s to every message.
    """
    if getattr(_supernode, "time", None) is not time:
        return False
    # a stand-in for the module: the SuperNode only calls time.sleep and time.time through it
    _supernode.time = _CappedSleep(seconds)  # type: ignore[assignment]
    return True


def install_fab_check(refusal: Callable[[bytes, int], str]) -> None:
    """Make this process's SuperNode refuse a new run's app (FAB) for which ``refusal(fab,
    run_id)`` says why ('' to accept), before it stores it or starts any process for it.

    Flower 1.42 verifies a new run's FAB, when it was given trusted entities, right after
    fetching it: it replies ``INVALID_FAB`` and runs nothing when verification fails. hierfl
    drives that step: the fetched FAB is marked with hierfl's verdict and Flower's verifier is
    replaced by one that reads it.

    Raises:
        RuntimeError: this Flower's SuperNode has no such step (another version).
    """
    original = getattr(_supernode, "_pull_and_store_message", None)
    if original is None or not hasattr(_supernode, "_verify_fab"):
        raise RuntimeError(
            "this Flower version's SuperNode cannot be made to check apps; hierfl-client "
            f"needs flwr=={FLOWER_VERSION}"
        )
    original = getattr(original, "hierfl_original", original)
    verdict_key, accepted = "valid_license", "hierfl-pin-accepted"  # Flower's loop reads it

    def pull_and_store(*args: Any, **kwargs: Any) -> Any:
        fetch = kwargs["get_fab"]

        def checked(fab_hash: str, run_id: int) -> Any:
            fab = fetch(fab_hash, run_id)
            verdict = "refused" if refusal(fab.content, run_id) else accepted
            return type(fab)(fab.hash_str, fab.content, {verdict_key: verdict})

        kwargs["get_fab"] = checked
        kwargs["trusted_entities"] = {"hierfl-app-pin": ""}  # truthy: every new FAB is checked
        return original(*args, **kwargs)

    pull_and_store.hierfl_original = original  # type: ignore[attr-defined]
    _supernode._pull_and_store_message = pull_and_store
    _supernode._verify_fab = lambda fab, trusted_entities: (  # type: ignore[assignment]
        fab.verifications.get(verdict_key) == accepted
    )


def run_flwr_clientapp() -> None:
    """Flower's ``flwr-clientapp`` command, with the arguments in ``sys.argv`` (imported
    already where ``preload_flwr_clientapp`` ran)."""
    from flwr.supernode.cli.flwr_clientapp import flwr_clientapp

    flwr_clientapp()


def preload_flwr_clientapp() -> None:
    """Import what ``run_flwr_clientapp`` needs, ahead of the forks that run it."""
    import flwr.clientapp  # noqa: F401
    import flwr.supernode.cli.flwr_clientapp  # noqa: F401


def run_supernode() -> None:
    """Flower's ``flower-supernode`` command, with the arguments in ``sys.argv``."""
    from flwr.supernode.cli import flower_supernode

    flower_supernode()


# ---- the in-process grid ---------------------------------------------------------------------
SERVER_NODE_ID = 1  # Flower's SuperLink node id: the sender of every instruction


def ensure_task_identity(run_id: int) -> None:
    """Flower's ``Message`` needs a task identity, which only a Flower runtime sets."""
    if TaskIdentity._run_id is None:  # a ServerApp process has one already: keep it
        TaskIdentity.run_id = run_id
        TaskIdentity.node_id = SERVER_NODE_ID
        TaskIdentity.task_id = 0


def set_message_id(message: Message, message_id: str) -> None:
    """Give a pushed message its id, as Flower's own grids do."""
    message.metadata.__dict__["_message_id"] = message_id


# ---- the flwr CLI's output -------------------------------------------------------------------
def registered_node_id(output: str) -> int | None:
    """The node id ``flwr supernode register`` printed (None: not found)."""
    found = _REGISTERED.search(output)
    return int(found.group(1)) if found else None


def listed_nodes(output: str) -> list[dict[str, Any]] | None:
    """The nodes ``flwr supernode list --format json`` printed (None: no JSON found)."""
    start = output.find("{")
    if start < 0:
        return None
    nodes: list[dict[str, Any]] = json.loads(output[start:])["nodes"]
    return nodes


# ---- a strategy's server-side state ----------------------------------------------------------
def _pack(value: object) -> tuple[str, object] | None:
    """A strategy attribute that holds arrays, as tensors; None for anything else."""
    import torch  # here: hierfl-client imports this module and never needs torch

    if isinstance(value, np.ndarray):
        return "ndarray", torch.from_numpy(value.copy())
    if isinstance(value, ArrayRecord):
        return "arrayrecord", value.to_torch_state_dict()
    # numpy arithmetic on a 0-d array (BatchNorm's num_batches_tracked) gives a numpy scalar
    arrays = (np.ndarray, np.generic)
    if isinstance(value, dict) and value and all(isinstance(v, arrays) for v in value.values()):
        return "ndarrays", {k: torch.from_numpy(np.array(v)) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, arrays) for v in value):
        return "ndarray-list", [torch.from_numpy(np.array(v)) for v in value]
    return None


def _unpack(kind: str, packed: Any) -> object:
    if kind == "ndarray":
        return packed.numpy()
    if kind == "arrayrecord":
        return ArrayRecord(packed)
    if kind == "ndarrays":
        return {k: v.numpy() for k, v in packed.items()}
    return [v.numpy() for v in packed]


def strategy_state(strategy: object) -> dict[str, list[object]]:
    """Every attribute of a Flower strategy that holds arrays (server-side optimizer state).

    Found by type, not by name, so any strategy's state is kept: FedOpt's ``current_arrays``,
    ``m_t`` and ``v_t``, FedAvgM's ``current_arrays`` and ``momentum_vector``, ...
    """
    out: dict[str, list[object]] = {}
    for name, value in vars(strategy).items():
        packed = _pack(value)
        if packed is not None:
            out[name] = list(packed)
    return out


def load_strategy_state(strategy: object, state: dict[str, list[object]]) -> None:
    """Set the attributes ``strategy_state`` saved."""
    for name, (kind, packed) in state.items():
        setattr(strategy, name, _unpack(str(kind), packed))


def control_bytes(content: RecordDict) -> int:
    """Bytes of ``content``'s config and metric records as Flower's protobuf writes them."""
    configs = sum(
        serde.config_record_to_proto(r).ByteSize() for r in content.config_records.values()
    )
    metrics = sum(
        serde.metric_record_to_proto(r).ByteSize() for r in content.metric_records.values()
    )
    return int(configs + metrics)
