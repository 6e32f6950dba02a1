"""How well an honest-but-curious cloud reconstructs the edges' inputs from what it receives.

For each configuration (model, cut, bottleneck, ``act-clip`` / ``act-noise``) it trains the run
through ``hierfl.api.prepare(...).run()`` in process (one experience of all 10 digits classes, 3
edges, ``cl=naive``) and attacks the edge at several points: ``untrained`` (fresh weights),
``after-first-round`` (a run of ``rounds=1 local-epochs=1``, same seed) and ``end`` (the full
budget). ``raw`` is cloud mode: the cloud receives the inputs themselves as uint8 pixels.

The attacker (``benchmarks/inversion_attack.py``) holds the digits' held-out **test split** as
auxiliary data (no edge ever sends it) and the edge weights the cloud averages; it trains a
decoder from its own images' activations, computed as an edge ships them (training mode, clip
and noise with a fixed generator, the wire's codec), back to the images. The attacked samples are
600 **training** samples, which the edges shipped. Metrics: PSNR and SSIM of the reconstructions,
and the accuracy of a classifier trained on clean auxiliary images when it classifies them; next
to them the run's cloud and edge-exit accuracy.

Writes ``inversion.json`` (``rows``), ``inversion_reconstructions.png`` and
``inversion_tradeoff.png`` to ``--out``, and prints a Markdown table. ``--quick`` runs a subset.
Each row records its CPU seconds (training and attack); everything runs on ``--threads``
threads (1: the CPU seconds are the wall time the row takes on an idle core).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import (
    figure,
    markdown_table,
    number,
    parser,
    results_dir,
    write_json,
)
from benchmarks.inversion_attack import (
    Attack,
    AuxiliarySet,
    Budget,
    attack,
    auxiliary_set,
    baselines,
    received_raw,
    recognised_accuracy,
    shipped,
    train_classifier,
)
from hierfl.api import prepare
from hierfl.app.wire import Wire
from hierfl.config import HierConfig
from hierfl.data.containers import Benchmark
from hierfl.data.streams import build_benchmark
from hierfl.models import SplitModel, model_for
from hierfl.options import parse_overrides
from hierfl.train.privacy import ActivationPrivacy

BASE = {"experiences": 1, "clients": 3, "cl": "naive", "max-chunk-mb": 1024}
# Training budget of the ``end`` snapshot; ResNet-18 at 32x32 costs ~45 s per epoch on one core.
MODELS: dict[str, dict[str, Any]] = {
    "small-cnn": {"model": "small-cnn", "input-shape": "", "rounds": 3, "local-epochs": 2},
    "resnet18": {"model": "resnet18", "input-shape": "3x32x32", "rounds": 2, "local-epochs": 1},
}
FIRST_ROUND = {"rounds": 1, "local-epochs": 1}
# The attacker's decoder budget per model (its input resolution sets the cost per epoch).
ATTACK = {
    "small-cnn": Budget(epochs=60, batch_size=32),
    "resnet18": Budget(epochs=25, batch_size=32),
}
ATTACKED = 600  # training samples attacked
SHOWN = 6  # samples per row in the picture
WHENS = ("untrained", "after-first-round", "end")


@dataclass(frozen=True)
class Case:
    """One configuration and the snapshots of its edge to attack; ``cut`` "" is cloud mode."""

    model: str
    cut: str = ""
    bottleneck: int = 0
    act_clip: float = 0.0
    act_noise: float = 0.0
    whens: tuple[str, ...] = ("end",)


def cases(quick: bool) -> list[Case]:
    """The coverage: every cut of both models, bottlenecks, clip-and-noise, the references."""
    every = ("untrained", "after-first-round", "end")
    if quick:
        return [
            Case("small-cnn", whens=("raw",)),
            Case("small-cnn", "block1", whens=every),
            Case("small-cnn", "block3", whens=("untrained", "end")),
            Case("small-cnn", "block1", act_clip=1.0, act_noise=0.5),
            Case("resnet18", "layer3"),
            Case("resnet18", "layer3", bottleneck=4),
        ]
    out = [Case("small-cnn", whens=("raw",))]
    for cut in ("block1", "block2", "block3"):
        out.append(Case("small-cnn", cut, whens=every))
        out += [Case("small-cnn", cut, act_clip=c, act_noise=n) for c, n in ((4, 0.1), (1, 0.5))]
    out.append(Case("small-cnn", "block1", act_noise=0.5))  # noise without a clip
    out.append(Case("small-cnn", "block1", bottleneck=4))  # 4x8x8 codes: 256 B per sample
    out.append(Case("resnet18", whens=("raw",)))
    for cut in ("stem", "layer1", "layer2", "layer3", "layer4"):
        whens = every if cut == "layer2" else ("untrained", "end")
        out.append(Case("resnet18", cut, whens=whens))
        if cut != "stem":  # 4x32x32 codes at the stem would be larger than the image itself
            out.append(Case("resnet18", cut, bottleneck=4))
    out += [Case("resnet18", "layer3", act_clip=c, act_noise=n) for c, n in ((4, 0.1), (1, 0.5))]
    return out


@dataclass
class Data:
    """One model's benchmark, auxiliary set, attacked samples and recognition classifier."""

    bench: Benchmark
    aux_x: torch.Tensor
    aux_y: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    classifier: torch.nn.Module
    clean_accuracy: float
    baselines: dict[str, dict[str, float]]


def data_for(config: HierConfig, budget: Budget) -> Data:
    bench = build_benchmark(config)
    aux, train = bench.test[0], bench.train[0]
    order = torch.randperm(len(train.y), generator=torch.Generator().manual_seed(config.seed))
    x, y = train.x[order[:ATTACKED]], train.y[order[:ATTACKED]]
    classifier = train_classifier(aux.x, aux.y, bench.num_classes, budget)
    clean = recognised_accuracy(classifier, x, y)
    return Data(
        bench, aux.x, aux.y, x, y, classifier, clean, baselines(aux.x, aux.y, x, y, classifier)
    )


def train(config: HierConfig, bench: Benchmark) -> tuple[SplitModel, dict[str, float]]:
    """Train a run as ``hierfl run`` does (in process); its model holds the averaged edge."""
    session = prepare(config, benchmark=bench)
    final = session.run().final
    return session.orchestrator.model, final


def attack_model(model: SplitModel, config: HierConfig, data: Data, budget: Budget) -> Attack:
    """The attack on ``model``'s edge as ``config`` ships its activations."""
    kwargs = {
        "batch_size": config.batch_size,
        "privacy": ActivationPrivacy(config.act_clip, config.act_noise),
        "wire": Wire.of(config),
    }
    aux = auxiliary_set(model, data.aux_x, seed=config.seed + 1, **kwargs)
    received = shipped(model, data.x, seed=config.seed + 2, **kwargs)
    return attack(aux, received, data.x, data.y, data.classifier, budget)


def attack_raw(config: HierConfig, data: Data, budget: Budget) -> Attack:
    """Cloud mode: the decoder learns from the inputs as the cloud receives them (sanity row)."""
    aux = AuxiliarySet(received_raw(data.aux_x, config.raw_codec), data.aux_x, lambda a: a)
    received = received_raw(data.x, config.raw_codec)
    return attack(aux, received, data.x, data.y, data.classifier, budget)


def rows_for(case: Case, base: HierConfig, data: Data) -> list[dict[str, Any]]:
    budget = ATTACK[case.model]
    config = dataclasses.replace(
        base,
        cut=case.cut,
        bottleneck=case.bottleneck,
        act_clip=case.act_clip,
        act_noise=case.act_noise,
        mode="cloud" if not case.cut else base.mode,
    ).validate()
    rows = []
    for when in case.whens:
        start, cpu = time.perf_counter(), time.process_time()
        final: dict[str, float] = {}
        if when == "raw" or when == "end":
            model, final = train(config, data.bench)
        elif when == "after-first-round":
            first = HierConfig.from_mapping(FIRST_ROUND, config).validate()
            model, final = train(first, data.bench)
        else:
            model = model_for(config, data.bench.num_classes, data.bench.input_shape)
        train_cpu = time.process_time() - cpu
        if when == "raw":
            result = attack_raw(config, data, budget)
        else:
            result = attack_model(model, config, data, budget)
        row = {
            "model": case.model,
            "cut": case.cut or None,
            "input_shape": list(data.bench.input_shape),
            "bottleneck": case.bottleneck,
            "codec": f"raw-{config.raw_codec}" if when == "raw" else config.wire_codec,
            "act_clip": case.act_clip,
            "act_noise": case.act_noise,
            "when": when,
            "psnr_db": result.psnr_db,
            "ssim": result.ssim,
            "recognised_accuracy": result.recognised_accuracy,
            "cloud_accuracy": final.get("cloud_accuracy"),
            "edge_accuracy": final.get("edge_accuracy") if when != "raw" else None,
            "train_cpu_s": train_cpu,
            "attack_cpu_s": time.process_time() - cpu - train_cpu,
            "wall_s": time.perf_counter() - start,
        }
        row["reconstructions"] = result.reconstructions[:SHOWN]
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def _label(r: dict[str, Any]) -> str:
    if r["when"] == "raw":
        return "raw inputs (cloud mode)"
    parts = [r["cut"]]
    if r["bottleneck"]:
        parts.append(f"b{r['bottleneck']}")
    if r["act_clip"] or r["act_noise"]:
        parts.append(f"clip {r['act_clip']:g} noise {r['act_noise']:g}")
    return " ".join(parts) + f", {r['when']}"


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['model']} {_label(r)}: PSNR {r['psnr_db']:.1f} dB, SSIM {r['ssim']:.3f}, recognised "
        f"{r['recognised_accuracy']:.3f}, cloud {number(r['cloud_accuracy'])}, edge "
        f"{number(r['edge_accuracy'])} (train {r['train_cpu_s']:.0f} + attack "
        f"{r['attack_cpu_s']:.0f} CPU s, {r['wall_s']:.0f} s wall)"
    )


TABLE = (
    "model | cut | bottleneck | codec | act-clip | act-noise | when | PSNR dB | SSIM"
    " | recognised | cloud acc | edge acc"
)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{r['model']} | {r['cut'] or '-'} | {r['bottleneck'] or '-'} | {r['codec']} | "
        f"{r['act_clip']:g} | {r['act_noise']:g} | {r['when']} | {r['psnr_db']:.1f} | "
        f"{r['ssim']:.3f} | {r['recognised_accuracy']:.3f} | {number(r['cloud_accuracy'])} | "
        f"{number(r['edge_accuracy'])}"
        for r in rows
    ]
    return markdown_table(TABLE, lines)


def _show(ax, image: torch.Tensor) -> None:
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def plot_reconstructions(rows: list[dict[str, Any]], originals: dict[str, Any], path: Path) -> None:
    """Per model, the originals on top, then each configuration's reconstructions."""
    models = list(originals)
    height = max(1 + sum(r["model"] == m for r in rows) for m in models)
    fig = figure(figsize=(4.6 * len(models), 0.62 * height + 0.6), layout="constrained")
    subfigures = fig.subfigures(1, len(models), squeeze=False).flat
    for sub, model in zip(subfigures, models, strict=True):
        mine = [r for r in rows if r["model"] == model]
        grid = sub.subplots(height, SHOWN, squeeze=False)
        lines = [("original", originals[model])] + [(_label(r), r["reconstructions"]) for r in mine]
        for i, axes in enumerate(grid):
            for j, ax in enumerate(axes):
                if i >= len(lines):
                    ax.set_axis_off()
                    continue
                _show(ax, lines[i][1][j])
            if i < len(lines):
                axes[0].set_ylabel(lines[i][0], rotation=0, ha="right", va="center", fontsize=7)
        sub.suptitle(model, fontsize=9)
    fig.savefig(path, dpi=110)


def plot_tradeoff(rows: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    """Recognised accuracy and PSNR of the reconstructions against the cloud's accuracy; dashed:
    what the auxiliary set's mean image scores (an attacker who learnt nothing); dotted: its
    class-mean image of each sample's label (an attacker who reads only the labels)."""
    fig = figure(figsize=(11, 4.5), layout="constrained")
    markers = {"small-cnn": "o", "resnet18": "s"}
    trained = [r for r in rows if r["cloud_accuracy"] is not None]
    for k, (key, name) in enumerate(
        (("recognised_accuracy", "recognised accuracy of reconstructions"), ("psnr_db", "PSNR dB"))
    ):
        ax = fig.add_subplot(1, 2, k + 1)
        for model, marker in markers.items():
            mine = [r for r in trained if r["model"] == model]
            if not mine:
                continue
            ax.scatter(
                [r["cloud_accuracy"] for r in mine],
                [r[key] for r in mine],
                marker=marker,
                label=model,
            )
            for r in mine:
                ax.annotate(_label(r), (r["cloud_accuracy"], r[key]), fontsize=6)
            for name, style in (("mean_image", "--"), ("class_mean_image", ":")):
                baseline = meta[model]["baselines"][name][key]
                ax.axhline(baseline, linestyle=style, linewidth=0.8, color="grey")
                ax.text(
                    0.01,
                    baseline,
                    f"{model}: {name.replace('_', ' ')}",
                    transform=ax.get_yaxis_transform(),
                    fontsize=6,
                    color="grey",
                    va="bottom",
                )
        ax.set_xlabel("cloud accuracy (utility)")
        ax.set_ylabel(f"{name} (leakage)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, brief=True, overrides=True)
    p.add_argument("--quick", action="store_true", help="a subset: a few minutes")
    p.add_argument("--models", default="small-cnn,resnet18")
    p.add_argument("--threads", type=int, default=1, help="torch threads (edges included)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {**BASE, "edge-threads": args.threads, **parse_overrides(args.overrides)}
    wanted = args.models.split(",")
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    originals: dict[str, Any] = {}
    started = time.perf_counter()
    for model in wanted:
        base = HierConfig.from_mapping({**overrides, **MODELS[model]}).validate()
        data = data_for(base, ATTACK[model])
        originals[model] = data.x[:SHOWN]
        meta[model] = {
            "config": base.to_dict(),
            "aux_samples": len(data.aux_y),
            "attacked_samples": len(data.y),
            "attack_budget": dataclasses.asdict(ATTACK[model]),
            "classifier_clean_accuracy": data.clean_accuracy,
            "baselines": data.baselines,
        }
        print(
            f"{model}: recognition classifier {data.clean_accuracy:.3f} on clean attacked "
            f"samples; the mean image scores {data.baselines['mean_image']['psnr_db']:.1f} dB, "
            f"the class-mean image {data.baselines['class_mean_image']['psnr_db']:.1f} dB",
            flush=True,
        )
        for case in cases(args.quick):
            if case.model == model:
                rows += rows_for(case, base, data)
    out = results_dir(args.out)
    plot_reconstructions(rows, originals, out / "inversion_reconstructions.png")
    plot_tradeoff(rows, meta, out / "inversion_tradeoff.png")
    for r in rows:
        del r["reconstructions"]
    total = time.perf_counter() - started
    write_json(out / "inversion.json", {"models": meta, "rows": rows, "wall_s": total})
    print(table(rows))
    cpu = sum(r["train_cpu_s"] + r["attack_cpu_s"] for r in rows)
    print(f"\n{len(rows)} rows: {cpu:.0f} CPU s in the rows, {total:.0f} s wall in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
