#!/usr/bin/env python3
"""PyTorch side of `strata bench train`: the same networks, trained and run the same way.

Builds strata's networks in PyTorch (crates/strata-nn/src/net.rs and precision.rs): every block
is `dense|conv (no bias) -> batch norm (momentum 0.1, eps 1e-5, affine) -> activation
[-> max pool]`, and the last block `dense -> batch norm` gives the logits.

* mlp: dense layers of --widths, then the logits;
* cnn (LeNet-like): conv 6 5x5 pad 2 + pool 2, conv 16 5x5 + pool 2, dense 120, dense 84, logits;
* tiny10: 3x3 convs 16, 16, 32/2, 32, 32, 64/2, 64 (pad 1 but the last, pad 0), 1x1 conv 64,
  global average pooling, logits.

float: ReLU, pixels in [0, 1]. w1a1 (BinaryNet): the input as 8-bit integers round(255 x);
weights sign(w) (sign(0) = +1) with a straight-through (identity) gradient and clipped to
[-1, 1] after every Adam step; activations sign(hardtanh(x)) with gradient 1_{|x| <= 1}; the
logits stay real.

Training: Adam (lr 1e-3), batches of 100 in a fresh random order each epoch (a last batch of one
example is dropped, as strata does), cross-entropy; the images are tensors built once before the
clock starts, and each network gets one untimed warm-up step. Inference: eval mode,
torch.no_grad(), batches of --eval-batch (strata's `limits::EVAL_BATCH`), argmax per image.

stdout carries exactly one JSON object (images/s per architecture, precision and mode);
progress goes to stderr. `--check` prints {"torch": VERSION, ...} and exits: 0 when torch
imports, 2 (with the reason on stderr) when it does not.

Standalone: `python benches/train_torch.py` times random images; `--data DIR` reads DIR/x.npy
(N x C*H*W float32, pixels in [0, 1]) and DIR/y.npy (N int64 labels), which `strata bench train`
writes from the embedded MNIST subset.
"""

import argparse
import ast
import json
import math
import sys
import time

ARCHITECTURES = ("mlp", "cnn", "tiny10")
PRECISIONS = ("float", "w1a1")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Train and inference throughput of strata's networks in PyTorch "
        "(the PyTorch side of `strata bench train`).",
        epilog="Prints one JSON object on stdout; progress on stderr.",
    )
    p.add_argument("--data", metavar="DIR",
                   help="folder with x.npy (N x C*H*W float32 in [0, 1]) and y.npy (N int64); "
                   "without it, --images random images")
    p.add_argument("--images", type=int, default=6000,
                   help="random images when --data is not given (default 6000)")
    p.add_argument("--shape", default="1,28,28", help="C,H,W of one image (default 1,28,28)")
    p.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    p.add_argument("--arch", default=",".join(ARCHITECTURES),
                   help="comma-separated architectures: mlp, cnn, tiny10 (default all)")
    p.add_argument("--precision", default=",".join(PRECISIONS),
                   help="comma-separated precisions: float, w1a1 (default both)")
    p.add_argument("--widths", default="1024,1024", help="MLP hidden widths (default 1024,1024)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs per timed run (default 1)")
    p.add_argument("--batch", type=int, default=100, help="training batch (default 100)")
    p.add_argument("--eval-batch", type=int, default=1000,
                   help="inference batch (default 1000, strata's EVAL_BATCH)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=1, help="seed of weights and batch order (default 1)")
    p.add_argument("--repeat", type=int, help="timed runs of every row (sets both below)")
    p.add_argument("--repeat-train", type=int, default=1,
                   help="timed training runs, the fastest counts (default 1)")
    p.add_argument("--repeat-infer", type=int, default=3,
                   help="timed inference passes, the fastest counts (default 3)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch.set_num_threads (default: torch's own choice)")
    p.add_argument("--check", action="store_true",
                   help="print the torch version as JSON and exit (2 if torch does not import)")
    a = p.parse_args(argv)
    if a.repeat is not None:
        a.repeat_train = a.repeat_infer = a.repeat
    a.arch = [s for s in a.arch.split(",") if s]
    a.precision = [s for s in a.precision.split(",") if s]
    a.widths = [int(s) for s in a.widths.split(",") if s]
    a.shape = [int(s) for s in a.shape.split(",")]
    for name in a.arch:
        if name not in ARCHITECTURES:
            p.error(f"unknown architecture {name!r} (mlp, cnn, tiny10)")
    for name in a.precision:
        if name not in PRECISIONS:
            p.error(f"unknown precision {name!r} (float, w1a1)")
    if len(a.shape) != 3 or min(a.shape) < 1:
        p.error("--shape must be three positive integers C,H,W")
    for flag, v in (("--epochs", a.epochs), ("--batch", a.batch), ("--eval-batch", a.eval_batch),
                    ("--repeat-train", a.repeat_train), ("--repeat-infer", a.repeat_infer),
                    ("--classes", a.classes)):
        if v < 1:
            p.error(f"{flag} must be at least 1")
    if not a.widths or min(a.widths) < 1:
        p.error("--widths must be positive integers")
    return a


def log(line):
    print(line, file=sys.stderr, flush=True)


def read_npy(path, torch):
    """A C-order little-endian .npy array (float32 or int64) as a tensor, without NumPy."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not a .npy file")
    if b[6] == 1:
        hl, start = int.from_bytes(b[8:10], "little"), 10
    else:
        hl, start = int.from_bytes(b[8:12], "little"), 12
    header = ast.literal_eval(b[start:start + hl].decode("latin1"))
    dtypes = {"<f4": torch.float32, "<i8": torch.int64}
    if header["descr"] not in dtypes or header["fortran_order"]:
        raise ValueError(f"{path}: want C-order <f4 or <i8, got {header}")
    t = torch.frombuffer(bytearray(b[start + hl:]), dtype=dtypes[header["descr"]])
    return t.reshape(tuple(header["shape"]))


def build(torch, arch, precision, shape, widths, classes):
    """strata's network `arch` at `precision` as an nn.Module."""
    nn = torch.nn
    F = torch.nn.functional

    class SignWeight(torch.autograd.Function):
        """sign(w), sign(0) = +1; gradient passed straight through."""

        @staticmethod
        def forward(ctx, w):
            return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)

        @staticmethod
        def backward(ctx, g):
            return g

    class SignActivation(torch.autograd.Function):
        """sign(hardtanh(x)) = sign(x), sign(0) = +1; gradient 1_{|x| <= 1}."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g.masked_fill(x.abs() > 1, 0.0)

    # (kind, out, k, stride, pad, pool, gap), as strata's `specs`.
    if arch == "mlp":
        specs = [("dense", w, 0, 0, 0, 1, False) for w in widths]
        specs.append(("dense", classes, 0, 0, 0, 1, False))
    elif arch == "cnn":
        specs = [("conv", 6, 5, 1, 2, 2, False), ("conv", 16, 5, 1, 0, 2, False),
                 ("dense", 120, 0, 0, 0, 1, False), ("dense", 84, 0, 0, 0, 1, False),
                 ("dense", classes, 0, 0, 0, 1, False)]
    else:
        specs = [("conv", 16, 3, 1, 1, 1, False), ("conv", 16, 3, 1, 1, 1, False),
                 ("conv", 32, 3, 2, 1, 1, False), ("conv", 32, 3, 1, 1, 1, False),
                 ("conv", 32, 3, 1, 1, 1, False), ("conv", 64, 3, 2, 1, 1, False),
                 ("conv", 64, 3, 1, 0, 1, False), ("conv", 64, 1, 1, 0, 1, False),
                 ("dense", classes, 0, 0, 0, 1, True)]
    binary = precision == "w1a1"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = nn.ParameterList()
            self.bns = nn.ModuleList()
            self.ops = []
            cur = list(shape)
            for kind, out, k, stride, pad, pool, gap in specs:
                if kind == "conv":
                    cin, h, w = cur
                    wshape = (out, cin, k, k)
                    fan_in, fan_out = cin * k * k, out * k * k
                    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
                    cur = [out, oh // pool, ow // pool]
                    self.bns.append(nn.BatchNorm2d(out, eps=1e-5, momentum=0.1))
                else:
                    fan_in = cur[0] if gap and len(cur) == 3 else math.prod(cur)
                    wshape, fan_out = (out, fan_in), out
                    cur = [out]
                    self.bns.append(nn.BatchNorm1d(out, eps=1e-5, momentum=0.1))
                if binary:  # Glorot-uniform, as BinaryNet and strata
                    a = math.sqrt(6.0 / (fan_in + fan_out))
                    init = torch.empty(wshape).uniform_(-a, a)
                else:  # He-normal
                    init = torch.randn(wshape) * math.sqrt(2.0 / fan_in)
                self.weights.append(nn.Parameter(init))
                self.ops.append((kind, stride, pad, pool, gap))

        def forward(self, x):
            if arch != "mlp":
                x = x.reshape(x.shape[0], *shape)
            h = torch.round(x * 255.0) if binary else x
            last = len(self.ops) - 1
            for i, ((kind, stride, pad, pool, gap), w, bn) in enumerate(
                    zip(self.ops, self.weights, self.bns)):
                if binary:
                    w = SignWeight.apply(w)
                if kind == "conv":
                    h = F.conv2d(h, w, stride=stride, padding=pad)
                else:
                    if h.dim() == 4:
                        h = h.mean((2, 3)) if gap else h.flatten(1)
                    h = F.linear(h, w)
                h = bn(h)
                if i < last:
                    h = SignActivation.apply(h) if binary else F.relu(h)
                    if pool > 1:
                        h = F.max_pool2d(h, pool)
            return h

    return Net()


def main():
    a = parse_args()
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means no PyTorch here
        log(f"torch does not import: {type(e).__name__}: {e}")
        sys.exit(2)
    if a.check:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}))
        return
    F = torch.nn.functional
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.data:
        x = read_npy(f"{a.data}/x.npy", torch).to(torch.float32).contiguous()
        y = read_npy(f"{a.data}/y.npy", torch).to(torch.int64).contiguous()
    else:
        g = torch.Generator().manual_seed(a.seed)
        feat = a.shape[0] * a.shape[1] * a.shape[2]
        x = torch.randint(0, 256, (a.images, feat), generator=g).to(torch.float32) / 255.0
        y = torch.randint(0, a.classes, (a.images,), generator=g)
    n = x.shape[0]
    if n < 2 or y.shape[0] != n or x.shape[1] != a.shape[0] * a.shape[1] * a.shape[2]:
        log(f"images {tuple(x.shape)} and labels {tuple(y.shape)} do not fit --shape {a.shape}")
        sys.exit(1)

    def make(arch, precision):
        return build(torch, arch, precision, a.shape, a.widths, a.classes)

    def step(model, opt, clip, xb, yb):
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if clip:
            with torch.no_grad():
                for w in model.weights:
                    w.clamp_(-1.0, 1.0)
        return loss, logits

    def predict(model):
        out = []
        for s in range(0, n, a.eval_batch):
            out.append(model(x[s:s + a.eval_batch]).argmax(1))
        return torch.cat(out)

    results = []
    for arch in a.arch:
        for precision in a.precision:
            clip = precision == "w1a1"
            # Untimed warm-up: one training step and one inference batch on a throwaway copy.
            torch.manual_seed(a.seed)
            warm = make(arch, precision)
            warm.train()
            step(warm, torch.optim.Adam(warm.parameters(), lr=a.lr), clip,
                 x[:a.batch], y[:a.batch])
            warm.eval()
            with torch.no_grad():
                warm(x[:a.eval_batch])
            del warm

            best, model, seen, mean_loss, accuracy = math.inf, None, 0, math.nan, math.nan
            for _ in range(a.repeat_train):
                torch.manual_seed(a.seed)
                model = make(arch, precision)
                model.train()
                opt = torch.optim.Adam(model.parameters(), lr=a.lr)
                order_gen = torch.Generator().manual_seed(a.seed)
                t = time.perf_counter()
                seen = 0
                for _ in range(a.epochs):
                    order = torch.randperm(n, generator=order_gen)
                    loss_sum, right, epoch_seen = 0.0, 0, 0
                    for s in range(0, n, a.batch):
                        idx = order[s:s + a.batch]
                        if idx.shape[0] < 2:  # batch norm needs two examples
                            continue
                        yb = y[idx]
                        loss, logits = step(model, opt, clip, x[idx], yb)
                        b = idx.shape[0]
                        loss_sum += loss.item() * b
                        right += int((logits.argmax(1) == yb).sum())
                        epoch_seen += b
                    seen += epoch_seen
                    mean_loss = loss_sum / max(epoch_seen, 1)
                    accuracy = right / max(epoch_seen, 1)
                best = min(best, time.perf_counter() - t)
            results.append({"architecture": arch, "precision": precision, "mode": "train",
                            "images": seen, "seconds": best,
                            "images_per_second": seen / best, "loss": mean_loss,
                            "train_accuracy": accuracy})
            log(f"torch {arch:<7} {precision:<6} train     {seen / best:>10.0f} images/s "
                f"(last epoch's loss {mean_loss:.3f})")

            model.eval()
            best = math.inf
            with torch.no_grad():
                for _ in range(a.repeat_infer):
                    t = time.perf_counter()
                    predict(model)
                    best = min(best, time.perf_counter() - t)
            results.append({"architecture": arch, "precision": precision, "mode": "inference",
                            "images": n, "seconds": best, "images_per_second": n / best,
                            "loss": None, "train_accuracy": None})
            log(f"torch {arch:<7} {precision:<6} inference {n / best:>10.0f} images/s")

    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "images": n, "results": results}))


if __name__ == "__main__":
    main()
