"""Residual VAE training throughput at 64x64: measured on this CPU, estimated for a Colab T4 with mixed precision.

Three configurations train through :func:`cvaelib.train.fit` (the path ``python -m cvaelib train --model resvae``
takes) on synthetic 64x64 images with 512-d CLIP-sized conditions, in alternating rounds so that other load on a
shared machine hits all of them alike:

* ``kit``        the kit's default ``resvae`` (width 32, latent 128, condition after down-block 3, no VGG loss);
* ``kit+vgg``    the same with the VGG19 perceptual loss on (layers relu1_2, relu2_2, relu3_2);
* ``sources``    the sources' set-up: width 64 and a VGG19 loss reaching relu4_4 (the in-run baseline).

The T4 estimate is a roofline: for each configuration it counts the FLOPs of one training step (forward + backward,
``torch.utils.flop_counter``) and the bytes of activations autograd keeps for the backward pass (each written once
and read once or more, in fp16 under AMP), then takes the slower of

* compute:   ``FLOPs/image`` at ``--util`` (default 10 %) of the T4's 65 TFLOP/s fp16 tensor-core peak.  Calibration:
  NVIDIA's ResNet-50 v1.5 PyTorch README reports ~1,190 img/s mixed-precision *inference* on a T4 (batch 128,
  8.2 GFLOP/image), i.e. ~9.8 TFLOP/s = 15 % of peak; training (backward, optimiser, batch-norm) and our thinner
  layers do worse, so 10 % is the realistic figure and 5 % the pessimistic one printed next to it;
* memory:    ``4 x activation bytes/image`` (write in forward, read in backward, write and read its gradient) at 70 %
  of the T4's 320 GB/s.

    python benchmarks/resvae_throughput.py            # full: 3 rounds x 6 batches of 32 per configuration
    python benchmarks/resvae_throughput.py --quick    # CI: one round, 2 batches of 8, seconds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cvaelib.data import ImageData  # noqa: E402
from cvaelib.models import ResidualVAE  # noqa: E402
from cvaelib.train import fit  # noqa: E402

T4_FP16_PEAK = 65e12  # FLOP/s, tensor cores
T4_BANDWIDTH = 320e9  # bytes/s
CONFIGS = {
    "kit": dict(width=32, perceptual=0.0),
    "kit+vgg": dict(width=32, perceptual=1.0),
    "sources": dict(width=64, perceptual=1.0, perceptual_layers="deep"),
}
DEEP_LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_4")


def build(name: str) -> ResidualVAE:
    cfg = dict(CONFIGS[name])
    layers = cfg.pop("perceptual_layers", None)
    torch.manual_seed(0)
    model = ResidualVAE(image_shape=(3, 64, 64), latent_dim=128, injection="down3", condition_dim=512,
                        perceptual_weights=None, **cfg)  # random VGG: same cost as ImageNet weights, no download
    if cfg["perceptual"] > 0 and layers == "deep":
        from cvaelib.perceptual import VGGPerceptualLoss

        model._perceptual.append(VGGPerceptualLoss(weights=None, layers=DEEP_LAYERS))
    return model


def step_cost(model: ResidualVAE, batch: int = 4) -> tuple[float, float]:
    """(training FLOPs per image, activation bytes per image in fp16) of one forward + backward."""
    from torch.utils.flop_counter import FlopCounterMode

    x, c = torch.rand(batch, 3, 64, 64), torch.randn(batch, 512)
    model.train()
    model.loss(x[:2], c[:2])  # builds the VGG net (if any) so its weights can be told apart below
    weights = {t.untyped_storage().data_ptr() for m in [model, *model._perceptual]
               for t in [*m.parameters(), *m.buffers()]}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if t.is_floating_point() and ptr not in weights:  # weights are saved too, but are not per-image traffic
            seen[ptr] = t.untyped_storage().nbytes() // t.element_size()
        return t

    with FlopCounterMode(display=False) as counter:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model.loss(x, c)["loss"]
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch, 2.0 * sum(seen.values()) / batch


def t4_estimate(flops: float, act_bytes: float, util: float) -> float:
    compute = util * T4_FP16_PEAK / flops
    memory = 0.7 * T4_BANDWIDTH / (4 * act_bytes)
    return min(compute, memory)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=6, help="timed batches per round and configuration")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--util", type=float, default=0.10, help="assumed share of the T4's fp16 peak")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="1 round x 2 batches (CI smoke run)")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.batches, args.batch_size = 1, 2, 8
    if args.threads:
        torch.set_num_threads(args.threads)

    models = {name: build(name) for name in CONFIGS}
    n = args.batch_size * args.batches
    gen = torch.Generator().manual_seed(0)
    data = ImageData(torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=gen),
                     torch.nn.functional.normalize(torch.randn(n, 512, generator=gen), dim=1), [], "synthetic")
    for model in models.values():  # warm-up: allocator, VGG build, first-call overheads
        fit(model, data.take(slice(0, args.batch_size)), epochs=1, batch_size=args.batch_size, progress=False,
            device="cpu")
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(args.rounds):
        for name, model in models.items():
            t0 = time.perf_counter()
            history = fit(model, data, epochs=1, batch_size=args.batch_size, progress=False, device="cpu")
            rates[name].append(history.images / (time.perf_counter() - t0))

    print(f"threads={torch.get_num_threads()} batch={args.batch_size} rounds={args.rounds}x{args.batches}")
    print(f"{'config':<9} {'params':>8} {'GFLOP/img':>10} {'act MB/img':>11} {'CPU img/s':>10} "
          f"{'T4 est. img/s':>14} {'(5% util)':>10}")
    result = {}
    for name, model in models.items():
        flops, act = step_cost(model)
        cpu = statistics.median(rates[name])
        est, low = t4_estimate(flops, act, args.util), t4_estimate(flops, act, 0.05)
        result[name] = (cpu, est, low)
        print(f"{name:<9} {model.num_parameters() / 1e6:>7.1f}M {flops / 1e9:>10.2f} {act / 1e6:>11.2f} "
              f"{cpu:>10.1f} {est:>14.0f} {low:>10.0f}")
    kit, src = result["kit"][0], result["sources"][0]
    print(f"RESULT resvae_throughput {kit / src:.2f} (kit/sources on CPU) cpu_img_s={kit:.1f} "
          f"t4_est_img_s={result['kit'][1]:.0f} t4_est_with_vgg_img_s={result['kit+vgg'][1]:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
