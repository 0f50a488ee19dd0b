"""Training throughput: the classic tutorial loop against ganforge's loop, same models, same process.

    python -m benchmarks.throughput                          # the four presets, about 4 minutes on 2 cores
    python -m benchmarks.throughput --presets mnist-mlp --repeats 5
    python -m benchmarks.throughput --set train.fast=false   # the levers off (plain path), for their effect

For each preset, images per second of whole training steps (d_steps D updates + g_steps G updates;
images = real images seen by D) for:
  (a) classic — written here the way the tutorials write it: a torchvision-style dataset that hands out
      PIL images through per-image transforms (ToTensor, Normalize; for folders ImageFolder with Resize,
      CenterCrop and, where the preset augments, RandomHorizontalFlip and RandomAffine), a DataLoader
      (shuffle, batch of the preset, drop_last, no worker processes), D ending in nn.Sigmoid + nn.BCELoss,
      Adam with torch's default implementation, D(G(z).detach()) for D and D(G(z)) for G, and the losses
      read back with .item() every step;
  (b) ganforge — ganforge.train on the same data and models, the preset's own settings.
Both use the same models (built from the preset), batch size and number of updates per image. The two
alternate (a, b, a, b, ...) for --repeats rounds; warm-up steps are excluded from each timing; the
table gives median and min-max img/s and the ratio of medians (b)/(a).

Model FLOP/s counts multiply-adds of every Linear/Conv layer (x2 FLOPs) of the passes a step makes —
per D step: G forward (no grad), D forward on real and on fake with weight and input gradients (x3);
per G step: G forward with gradients (x3) and D forward with input gradients only (x2) — and compares
them with the peak of a large fp32 matmul timed in the same run and threads. For the MLP presets the
last two columns time the step's matrix products alone, at the step's own shapes (batch rows by layer
widths), back to back: the FLOP/s these shapes allow on this machine, and how much of it the whole
loop (activations, losses, Adam, Python) keeps.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import ganforge
from ganforge.config import parse_set
from ganforge.data import load_dataset
from ganforge.models import build_discriminator, build_generator, noise

from . import harness

PRESETS = ["mnist-mlp", "mnist-mlp-bn", "mnist-dcgan", "dcgan"]
# (warm-up steps, measured steps) per timing
STEPS = {"mnist-mlp": (20, 300), "mnist-mlp-bn": (20, 200), "mnist-dcgan": (3, 30), "dcgan": (1, 4)}


# ---------------------------------------------------------------- (a) the classic loop

class ArrayImages(torch.utils.data.Dataset):
    """torchvision.datasets.MNIST's way: uint8 arrays in memory, one PIL image per __getitem__, transformed."""

    def __init__(self, x_uint8: torch.Tensor, transform) -> None:
        self.x, self.transform = x_uint8, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i].numpy(), mode="L")), 0


def classic_loader(cfg, shape, folder: "Path | None"):
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    size, ch = cfg.data.image_size, shape[0]
    norm = T.Normalize([0.5] * ch, [0.5] * ch)
    if folder is not None:  # pytorch/examples dcgan: ImageFolder + Resize + CenterCrop + ToTensor + Normalize
        aug = [T.RandomHorizontalFlip(), T.RandomAffine(5, (0.05, 0.025), (0.95, 1.05), 0.025)] if cfg.data.augment else []
        ds = ImageFolder(str(folder), T.Compose([T.Resize(size), T.CenterCrop(size), *aug, T.ToTensor(), norm]))
    else:  # mnist5k as uint8 28x28, like torchvision's MNIST
        data = load_dataset(ganforge.resolve_config("mnist-mlp").data)
        x = ((data.x[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        ds = ArrayImages(x, T.Compose(([T.Resize(size)] if size and size != 28 else []) + [T.ToTensor(), norm]))
    return torch.utils.data.DataLoader(ds, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True)


def classic_steps(cfg, shape, folder, warm: int, measured: int) -> float:
    """img/s of the classic loop over ``measured`` steps after ``warm``."""
    torch.manual_seed(0)
    G, D = build_generator(cfg.model, shape), build_discriminator(cfg.model, shape)
    Dsig = nn.Sequential(D, nn.Sigmoid())
    bce = nn.BCELoss()
    o = cfg.optim
    opt_g = torch.optim.Adam(G.parameters(), lr=o.lr_g, betas=tuple(o.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=o.lr_d, betas=tuple(o.betas))
    loader = classic_loader(cfg, shape, folder)
    batches = iter(loader)
    B = cfg.train.batch_size
    ones, zeros = torch.ones(B, 1), torch.zeros(B, 1)
    d_log, g_log = [], []
    t_start = None
    for step in range(warm + measured):
        if step == warm:
            t_start = time.perf_counter()
        for _ in range(cfg.d_steps):
            try:
                real, _ = next(batches)
            except StopIteration:
                batches = iter(loader)
                real, _ = next(batches)
            z = torch.randn(B, cfg.model.z_dim)
            fake = G(z)
            opt_d.zero_grad()
            d_loss = bce(Dsig(real).view(B, 1), ones) + bce(Dsig(fake.detach()).view(B, 1), zeros)
            d_loss.backward()
            opt_d.step()
        for _ in range(cfg.g_steps):
            opt_g.zero_grad()
            g_loss = bce(Dsig(fake).view(B, 1), ones)
            g_loss.backward()
            opt_g.step()
            fake = G(torch.randn(B, cfg.model.z_dim)) if cfg.g_steps > 1 else fake
        d_log.append(d_loss.item())
        g_log.append(g_loss.item())
    return measured * B * cfg.d_steps / (time.perf_counter() - t_start)


# ---------------------------------------------------------------- (b) ganforge's loop

def ganforge_steps(cfg, root: Path, warm: int, measured: int) -> float:
    stamps = {}

    def on_step(step, G, D):
        if step in (warm, warm + measured):
            stamps[step] = time.perf_counter()

    run_dir = root / f"run-{time.monotonic_ns()}"
    ganforge.train(cfg, run_dir, on_step=on_step)
    return measured * cfg.train.batch_size * cfg.d_steps / (stamps[warm + measured] - stamps[warm])


# ---------------------------------------------------------------- FLOPs and the matmul peak

_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def layer_calls(net: nn.Module, x: torch.Tensor) -> list:
    """(layer, its input, its output) for every Linear/Conv layer of one eval-mode forward of ``x``, in
    the order the pass meets them."""
    calls = []
    handles = [m.register_forward_hook(lambda m, i, o: calls.append((m, i[0], o)))
               for m in net.modules() if isinstance(m, _LAYERS)]
    with torch.no_grad():
        net.eval()(x)
    for h in handles:
        h.remove()
    return calls


def macs_per_sample(net: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of one forward pass of one sample through every Linear/Conv layer."""
    total = 0
    for m, inp, out in layer_calls(net, x):
        if isinstance(m, nn.Linear):
            total += m.in_features * m.out_features
        elif isinstance(m, nn.Conv2d):
            total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:  # ConvTranspose2d
            total += inp[0].numel() * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
    return total


def flops_per_image(cfg, shape) -> float:
    G, D = build_generator(cfg.model, shape), build_discriminator(cfg.model, shape)
    g = macs_per_sample(G, noise(cfg.model, 2)[:1]) if cfg.model.arch == "dcgan" else \
        macs_per_sample(G, noise(cfg.model, 1))
    d = macs_per_sample(D, torch.zeros(2, *shape)) // 2 if cfg.model.arch == "dcgan" else \
        macs_per_sample(D, torch.zeros(1, *shape))
    per_step = cfg.d_steps * (g + 3 * d + 3 * d) + cfg.g_steps * (3 * g + 2 * d)  # in multiply-adds, per sample
    return 2.0 * per_step / cfg.d_steps  # FLOPs per real image


def linear_layers(net: nn.Module, x: torch.Tensor) -> list:
    """(in_features, out_features) of every Linear layer, in the order a forward pass meets them."""
    return [(m.in_features, m.out_features) for m, _, _ in layer_calls(net, x) if isinstance(m, nn.Linear)]


def gemm_plan(cfg, shape) -> "tuple[list, int]":
    """The matrix products one ganforge step of an MLP preset makes, at the step's own shapes (batch
    rows, layer widths; D's real and fake in one product of 2B rows where ganforge does one pass), as
    closures on preallocated tensors — forward addmm, input-gradient mm, weight-gradient mm — and
    their FLOPs (the count the model FLOP/s column uses)."""
    from ganforge.training.step import rows_independent

    G, D = build_generator(cfg.model, shape), build_discriminator(cfg.model, shape)
    g_layers, d_layers = linear_layers(G, noise(cfg.model, 1)), linear_layers(D, torch.zeros(1, *shape))
    B = cfg.train.batch_size
    d_rows = [2 * B] if cfg.train.fast and rows_independent(cfg, D) else [B, B]
    plan = []  # (rows, in, out, products): 1 = forward; 2 = + input gradient; 3 = + weight gradient
    for _ in range(cfg.d_steps):
        plan += [(B, i, o, 1) for i, o in g_layers] + [(n, i, o, 3) for n in d_rows for i, o in d_layers]
    for _ in range(cfg.g_steps):
        plan += [(B, i, o, 3) for i, o in g_layers] + [(B, i, o, 2) for i, o in d_layers]
    ops, flops = [], 0
    for n, i, o, k in plan:
        x, w, b, gy = torch.randn(n, i), torch.randn(o, i), torch.randn(o), torch.randn(n, o)
        ops.append(lambda x=x, w=w, b=b: torch.addmm(b, x, w.t()))
        if k >= 2:
            ops.append(lambda gy=gy, w=w: torch.mm(gy, w))
        if k >= 3:
            ops.append(lambda gy=gy, x=x: torch.mm(gy.t(), x))
        flops += 2 * n * i * o * k
    return ops, flops


def gemm_ceiling(cfg, shape, repeats: int = 7) -> "float | None":
    """FLOP/s of the step's matrix products alone (gemm_plan), back to back with nothing in between:
    the most a loop of these shapes can reach on this machine. None for the convolutional presets."""
    if cfg.model.arch != "mlp":
        return None
    ops, flops = gemm_plan(cfg, shape)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(20):
            for op in ops:
                op()
        best = min(best, (time.perf_counter() - t) / 20)
    return flops / best


# ---------------------------------------------------------------- main

def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for ganforge's loop (and the models of both), as in `ganforge train --set`")
    ap.add_argument("--folder", help="dcgan: a folder of images (default: 512 crops of matplotlib's sample pictures)")
    args = ap.parse_args()
    sets = parse_set(args.sets)
    peak = harness.matmul_peak()
    print(harness.header())
    print(f"# fp32 matmul peak (2048x2048, best of 5): {peak / 1e9:.1f} GFLOP/s"
          + (f"; --set {' '.join(args.sets)}" if args.sets else "") + "\n", flush=True)
    head = ("| preset | batch | classic img/s (median, min-max) | ganforge img/s (median, min-max) | ganforge / classic "
            "| ganforge model GFLOP/s | % of matmul peak | step's GEMMs alone, GFLOP/s | % of that |")
    print(head + "\n|" + "|".join(["---"] * (head.count("|") - 1)) + "|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = None
        for preset in [p for p in args.presets.split(",") if p]:
            base = {"log.progress": False, "log.sample_every": "1000000 steps", "log.checkpoint_every": "1000000 steps",
                    "eval.every": "off", "on_nan": "stop"}
            if preset == "dcgan":
                if folder is None:
                    from ganforge.data.examples import write_example_folder

                    folder = Path(args.folder) if args.folder else write_example_folder(root / "images", n_photo=384,
                                                                                        n_drawing=128)
                base["data.name"] = str(folder)
            warm, measured = STEPS.get(preset, (5, 50))
            cfg = ganforge.resolve_config(preset, overrides={**base, **sets, "train.steps": warm + measured,
                                                             "train.epochs": None})
            shape = tuple(load_dataset(cfg.data).shape) if preset != "dcgan" else (cfg.data.channels, cfg.data.image_size,
                                                                                   cfg.data.image_size)
            a, b = [], []
            for _ in range(args.repeats):
                a.append(classic_steps(cfg, shape, folder if preset == "dcgan" else None, warm, measured))
                b.append(ganforge_steps(cfg, root, warm, measured))
            ma, mb = statistics.median(a), statistics.median(b)
            gflops = flops_per_image(cfg, shape) * mb / 1e9
            ceiling = gemm_ceiling(cfg, shape)
            ceiling_cols = f"{ceiling / 1e9:.1f} | {100 * gflops * 1e9 / ceiling:.0f}%" if ceiling else "- | -"
            print(f"| {preset} | {cfg.train.batch_size} | {ma:.0f} ({min(a):.0f}-{max(a):.0f}) | "
                  f"{mb:.0f} ({min(b):.0f}-{max(b):.0f}) | {mb / ma:.2f}x | {gflops:.1f} | "
                  f"{100 * gflops * 1e9 / peak:.0f}% | {ceiling_cols} |", flush=True)
            harness.record("throughput", {"preset": preset, "sets": args.sets, "classic_img_per_s": a,
                                          "ganforge_img_per_s": b, "ratio": mb / ma, "model_gflops": gflops,
                                          "peak_gflops": peak / 1e9}, args)


if __name__ == "__main__":
    sys.exit(main())
