"""Sample a generator exported by `ganforge export RUN --out G.onnx` with onnxruntime, numpy and Pillow only
(no torch, no ganforge).

    python examples/sample_onnx.py G.onnx --n 64 --seed 0 --out grid.png
    python examples/sample_onnx.py G.onnx --z z.npy --out x.npy          # your own noise, raw output
    python examples/sample_onnx.py G.onnx --n 100 --class 7 --out sevens.png

The file's metadata says what it needs: z_dim and z_dist (normal: N(0, I); uniform: U(0, 1)), the
class names of a conditional generator (input y, int64 class ids), and what the output is (images in
[0, 1], N x C x H x W, or toy samples N x D).
"""

import argparse
import json
import math
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def grid(images: np.ndarray, pad: int = 2) -> Image.Image:
    """N x C x H x W in [0, 1] → one picture, rows of ceil(sqrt(N)), black padding (as torchvision's make_grid)."""
    n, c, h, w = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.float32)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = \
            img.transpose(1, 2, 0)
    pixels = (canvas * 255 + 0.5).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if c == 1 else pixels)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a .onnx file written by ganforge export")
    ap.add_argument("--n", type=int, default=64, help="number of samples (ignored with --z)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--z", help="a .npy of latent vectors (N x z_dim) to use instead of drawing them")
    ap.add_argument("--class", dest="cls", type=int, help="conditional models: the class of every sample")
    ap.add_argument("--out", required=True, help=".png (a grid; images only) or .npy (the raw output)")
    args = ap.parse_args()

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("producer") != "ganforge":
        sys.exit(f"{args.model} was not written by ganforge export")
    z_dim, classes = int(meta["z_dim"]), json.loads(meta["classes"])
    rng = np.random.default_rng(args.seed)
    if args.z:
        z = np.load(args.z).astype(np.float32)
    elif meta["z_dist"] == "uniform":
        z = rng.random((args.n, z_dim), dtype=np.float32)
    else:
        z = rng.standard_normal((args.n, z_dim), dtype=np.float32)
    feed = {"z": z}
    if classes:
        y = np.full(len(z), args.cls) if args.cls is not None else np.arange(len(z)) % len(classes)
        feed["y"] = y.astype(np.int64)
    x = session.run(None, feed)[0]
    if args.out.endswith(".npy"):
        np.save(args.out, x)
    elif meta["kind"] == "image":
        grid(x).save(args.out)
    else:
        sys.exit("toy models give N x D samples: write them with --out FILE.npy")
    print(f"wrote {args.out}: {len(z)} samples of {meta['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
