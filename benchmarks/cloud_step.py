"""Time one training step of the VGG-16 and ResNet-18 cloud segments, on CPU and on CUDA.

Batch 128 of CIFAR-shaped activations at each model's default cut; a few warm-up steps, then
the median of timed steps (CUDA synchronised). Writes ``cloud_step.json``. Devices without
CUDA report only the CPU.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from benchmarks.harness import parser, results_dir, write_json
from hierfl.cloud.trainer import CloudTrainer
from hierfl.models import create_model


def time_step(model_name: str, device: str, batch: int, steps: int) -> dict[str, float | str]:
    model = create_model(model_name, cut="", num_classes=10, input_shape=(3, 32, 32), seed=0)
    shape = model.activation_shape()
    trainer = CloudTrainer(model.cloud, lr=0.01, optimizer="sgd", momentum=0.9, device=device)
    a = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    times = []
    for i in range(steps + 3):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_batch(a, y)
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return {
        "model": model_name,
        "cut": model.cut,
        "device": device,
        "batch": batch,
        "activation_shape": "x".join(map(str, shape)),
        "median_step_s": statistics.median(times),
        "min_step_s": min(times),
    }


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args(argv)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for name in ("vgg16", "resnet18"):
        for device in devices:
            row = time_step(name, device, args.batch, args.steps)
            rows.append(row)
            print(json.dumps(row), flush=True)
    info = {
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
    }
    write_json(results_dir(args.out) / "cloud_step.json", {"machine": info, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
