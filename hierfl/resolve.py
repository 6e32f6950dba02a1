"""From layers of keys to the run's validated config, saying what was filled in or has no effect.

``hierfl run`` (defaults < preset < ``--config`` file < flags < ``key=value``) and ``hierfl.run``
(a config or mapping < keyword overrides) both go through ``resolve``:

1. the layers are merged, later ones winning;
2. the continual methods' own defaults (``ContinualMethod.defaults``) fill the keys left at
   hierfl's default that no layer named (``with_method_defaults``; said, with ``say``), and
   ``rounds`` grows with the sampling cycle where ``clients-per-round`` samples the edges
   (``with_sampling_rounds``);
3. the config is validated (``ConfigError`` names the key);
4. keys set to a value this run never reads are named with the reason (``warn``): ``lwf.alpha=2``
   without ``cl=lwf``, ``cloud-lr`` in edge mode or ``local-epochs`` in an online run are valid
   values that change nothing, but a user who set one expects it to matter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hierfl.config import HierConfig
from hierfl.modes import MODES
from hierfl.options import dashed
from hierfl.registry import CONTINUAL, REGISTRIES

Say = Callable[[str], None]


def resolve(
    layers: Sequence[Mapping[str, Any]],
    *,
    base: HierConfig | None = None,
    say: Say | None = None,
    warn: Say | None = None,
) -> HierConfig:
    """``base`` (default: hierfl's defaults) with ``layers`` applied in order, the continual
    methods' defaults filled in, validated.

    Keys of ``base`` count as defaults, keys of ``layers`` as set by the user (``set-keys``).
    """
    config = base or HierConfig()
    for layer in layers:
        config = HierConfig.from_mapping(layer, base=config)
    config, applied = with_method_defaults(config, [key for layer in layers for key in layer])
    if applied and say is not None:
        say(describe_defaults(config, applied))
    config, rounds_line = with_sampling_rounds(config)
    if rounds_line and say is not None:
        say(rounds_line)
    config = config.validate()
    if (unused := describe_unused(config)) and warn is not None:
        warn(unused)
    return config


def with_method_defaults(
    config: HierConfig, given: Iterable[str] = ()
) -> tuple[HierConfig, dict[str, Any]]:
    """Fill in what the continual methods of ``cl`` need (``ContinualMethod.defaults``).

    A method's default applies to a key left at hierfl's own default; a key the user changed
    wins, and so does a key the user set even to hierfl's default (``freeze-edge-after=-1``):
    one named in ``given`` (dashed or underscored) or in the config's ``set-keys``. The
    returned config records the core keys of ``given`` in ``set-keys``, so the ServerApp and
    the edges, which apply this again, keep them too. Returns the config and the keys that
    were filled in (for the log). Idempotent.
    """
    plain = HierConfig()
    named = config.user_keys | ({dashed(key) for key in given} & set(HierConfig.keys()))
    if named != config.user_keys:
        config = dataclasses.replace(config, set_keys=",".join(sorted(named)))
    applied: dict[str, Any] = {}
    if not config.cl:
        applied["cl"] = "+".join(config.methods)
    for name in config.methods:
        if name not in CONTINUAL.names():
            continue  # validate() names the unknown method
        for key, value in CONTINUAL.plugin(name).defaults.get(config.mode, {}).items():
            attr = key.replace("-", "_")
            if key in applied or key in named:
                continue
            if getattr(config, attr) == getattr(plain, attr):
                applied[key] = value
    if applied:
        config = HierConfig.from_mapping(applied, base=config)
    return config, {k: getattr(config, k.replace("-", "_")) for k in applied}


def with_sampling_rounds(config: HierConfig) -> tuple[HierConfig, str]:
    """``rounds`` left at its default while ``clients-per-round`` samples the edges: as many
    rounds as it takes every edge to be asked as often as without sampling (``rounds`` times
    the sampling cycle of ceil(clients / clients-per-round) rounds; online, where an edge that
    sat out catches up on what arrived, at least one cycle). Without it 10 edges of 100 a round
    would train each edge's data once in ten of the default's visits, and half the edges would
    sit out each experience. Returns the config and the log line ("" when unchanged).
    Idempotent: a config whose ``rounds`` is no longer the default is left alone."""
    plain = HierConfig()
    if (
        not config.clients_per_round
        or "rounds" in config.user_keys
        or config.rounds != plain.rounds
    ):
        return config, ""
    cycle = config.sampling_cycle
    rounds = max(config.rounds, cycle) if config.online else config.rounds * cycle
    if rounds == config.rounds:
        return config, ""
    config = dataclasses.replace(config, rounds=rounds)
    return config, (
        f"using rounds={rounds} per experience (clients-per-round={config.clients_per_round} of "
        f"{config.clients} edges asks each edge once in {cycle} rounds; "
        + (
            "every edge asked in each experience"
            if config.online
            else f"each edge asked {plain.rounds} times an experience, as without sampling"
        )
        + "); set rounds to change"
    )


def describe_defaults(config: HierConfig, applied: Mapping[str, Any]) -> str:
    """The log line for ``with_method_defaults``' result ("" when nothing was filled in)."""
    parts = []
    if "cl" in applied:
        parts.append(f"cl={applied['cl']} (the {config.mode} mode's default)")
    needed = {k: v for k, v in applied.items() if k != "cl"}
    if needed:
        settings = ", ".join(f"{k}={v}" for k, v in needed.items())
        parts.append(f"{settings} (what {config.cl} needs in {config.mode} mode)")
    return f"using {'; '.join(parts)}; set them to change" if parts else ""


def unused_keys(config: HierConfig) -> list[str]:
    """``KEY=VALUE (why)`` for each key left off its default that ``config``'s run never reads.

    ``config`` is validated (plug-in settings coerced).
    """
    plain = HierConfig()
    reasons = dict(MODES[config.mode].unread)
    if config.online:
        reasons["ship"] = "an online run ships each sample once"
        if config.mode != "cloud":  # cloud mode's cloud still takes local-epochs passes
            reasons["local-epochs"] = "an online run trains online-passes passes per round"
    else:
        reasons["online-passes"] = "only online runs (online=true) read it"
    if config.raw_codec != "jpeg":
        reasons["jpeg-quality"] = "only raw-codec=jpeg reads it"
    if not config.bottleneck_channels:
        reasons["code-bits"] = "only a bottleneck (bottleneck > 0) reads it"
        reasons["bottleneck-recon"] = "only a bottleneck (bottleneck > 0) reads it"
    out = []
    for key, why in reasons.items():
        value = getattr(config, key.replace("-", "_"))
        if value != getattr(plain, key.replace("-", "_")):
            out.append(f"{key}={value} ({why})")
    return out + _unused_plugin_settings(config)


def _unused_plugin_settings(config: HierConfig) -> list[str]:
    """Settings of plug-ins this run does not use (``NAME.KEY``), at a value off the default."""
    active = {config.scenario, config.partition, config.model, config.strategy, *config.methods}
    out = []
    for name, items in sorted(config.plugin_settings.items()):
        if name in active:
            continue
        registry = next(r for r in REGISTRIES if name in r.names())
        defaults = registry.plugin(name).settings()
        for field in dataclasses.fields(defaults):
            key = dashed(field.name)
            if key in items and items[key] != getattr(defaults, field.name):
                out.append(f"{name}.{key}={items[key]} ({name} is not in use in this run)")
    return out


def describe_unused(config: HierConfig) -> str:
    """The warning line for ``unused_keys`` ("" when every key set is read)."""
    unused = unused_keys(config)
    return f"these keys have no effect in this run: {'; '.join(unused)}" if unused else ""
