"""Image GANs side by side in one run (ratios, not tests; part of `make bench`).

    .venv/bin/python benchmarks/bench_image_gans.py [--device cpu|cuda] [--steps N] [--g-channels C] [--d-channels C]

Rows, each a ratio of two measurements taken in this process one after the other, on 32x32x3 random uint8
images (CIFAR-10's shape; the data set cannot be downloaded here and time does not depend on pixel values),
batch 64:

* **ResNet step, loop vs bare**: ``Trainer.train_step`` of ``experiment=sngan`` (hinge, 5 D steps per G step,
  spectral-norm ResNets) against a bare PyTorch loop in Mimicry's style on the same nets (the same builder, the
  same seed): per D step a real batch and ``G(z).detach()``, ``relu(1 - D(x)) + relu(1 + D(G(z)))``, Adam
  (0, 0.9); then ``-D(G(z))`` for G.  Goal: >= 0.9x.
* **ResNet vs DCGAN**: the same loop's steps/s with ``net=resnet`` against ``net=dcgan`` (hinge, 5 D steps,
  spectral norm on D, ``net.channels=64``): what the ResNet costs.
* **DiffAugment, ours vs the authors'**: ``augment=diffaugment``'s pipe against mit-han-lab's
  ``DiffAugment_pytorch.py`` (vendored in benchmarks/third_party) on the same batch, forward and backward,
  policy ``color,translation,cutout``.  Goal: within 1.1x of its time.
* **DiffAugment's share of a ResNet step**: a step of experiment=sngan calls the pipe 11 times (real and fake in
  each of the 5 D steps, the fakes in G's step): 11 x its time over the step's time; and, measured directly, the
  sngan step with ``augment=diffaugment`` against without (noisier: two loop measurements).  Goal: at most 15 %
  at 32 px.

On the CPU the default widths are cut (``--g-channels 64 --d-channels 64``) so the run takes about a minute;
on CUDA the defaults are SNGAN's (256 / 128).
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_gpu import random_images, sync  # noqa: E402
from conftest import compose_train  # noqa: E402

SHAPE, BATCH = (3, 32, 32), 64


def trainer(overrides, device, tmp, images):
    """A Trainer of ``overrides`` on synthetic CIFAR-shaped images (``build_data`` swapped for a tensor source)."""
    import gan_cli.build as build
    import gan_cli.training.loop as loop
    from gan_cli.data.base import DataInfo
    from gan_cli.data.images import ImageSource

    cfg = compose_train("data=cifar10", f"data.batch_size={BATCH}", f"device={device}", "metrics=none",
                        "image_every=0", *overrides, tmp_path=tmp)
    real_build = build.build_data
    build.build_data = lambda data_cfg, dev: ImageSource(DataInfo(name="cifar10", kind="image", shape=SHAPE), images,
                                                         None, torch.device(dev))
    try:
        return loop.build_trainer(cfg, tmp)
    finally:
        build.build_data = real_build


def rate(step, steps, warmup, device) -> float:
    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps / (time.perf_counter() - t0)


def loop_rate(overrides, device, images, steps, warmup):
    with tempfile.TemporaryDirectory() as tmp:
        tr = trainer(overrides, device, tmp, images)
        return rate(lambda: tr.train_step(False), steps, warmup, device), tr


def bare_rate(G, D, device, images, steps, warmup, n_dis=5, nz=128):
    """Mimicry's SNGAN iteration (torch_mimicry/nets/sngan/sngan_base.py, training/trainer.py) on copies of G, D."""
    G, D = copy.deepcopy(G).requires_grad_(True), copy.deepcopy(D).requires_grad_(True)  # the loop leaves D frozen
    G.train()
    D.train()
    optD = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9))
    optG = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))
    gen = torch.Generator(device=device).manual_seed(1)

    def step():
        for _ in range(n_dis):
            idx = torch.randint(0, images.shape[0], (BATCH,), generator=gen, device=device)
            real = images[idx].float().div_(127.5).sub_(1.0)
            fake = G(torch.randn(BATCH, nz, generator=gen, device=device)).detach()
            errD = F.relu(1.0 - D(real)).mean() + F.relu(1.0 + D(fake)).mean()
            optD.zero_grad()
            errD.backward()
            optD.step()
        errG = -D(G(torch.randn(BATCH, nz, generator=gen, device=device))).mean()
        optG.zero_grad()
        errG.backward()
        optG.step()

    return rate(step, steps, warmup, device)


def authors_diffaugment():
    spec = importlib.util.spec_from_file_location("DiffAugment_pytorch",
                                                  ROOT / "benchmarks" / "third_party" / "DiffAugment_pytorch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.DiffAugment


def augment_seconds(fn, x, reps, device) -> float:
    """Seconds per forward + backward of ``fn`` on ``x`` (median of ``reps``)."""
    times = []
    for _ in range(reps + 2):
        xi = x.detach().requires_grad_(True)
        sync(device)
        t0 = time.perf_counter()
        fn(xi).square().mean().backward()
        sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times[2:])[len(times[2:]) // 2]


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps per row (default 5 CPU, 100 CUDA)")
    ap.add_argument("--g-channels", type=int, default=None)
    ap.add_argument("--d-channels", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's; 1 on a shared machine)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = a.device
    cuda = torch.device(device).type == "cuda"
    gch, dch = a.g_channels or (256 if cuda else 64), a.d_channels or (128 if cuda else 64)
    steps, warmup = a.steps or (100 if cuda else 5), (10 if cuda else 1)
    images = random_images(2048, SHAPE, device)
    plain = ["speed.amp=off", "speed.channels_last=off", "speed.optimizer=off", "speed.tf32=off"]
    sngan = ["experiment=sngan", f"net.g_channels={gch}", f"net.d_channels={dch}", *plain]
    out = [f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}; 32x32x3, batch {BATCH}, "
           f"ResNet widths G {gch} / D {dch}, {steps} timed steps (+{warmup} warm-up), float32, no speed switches", ""]

    ours, tr = loop_rate(sngan, device, images, steps, warmup)
    bare = bare_rate(tr.G, tr.D, device, images, steps, warmup)
    dcgan, tr_dc = loop_rate(["experiment=sngan", "net=dcgan", "net.channels=64", "net.spectral_norm=true", *plain],
                             device, images, steps, warmup)
    assert type(tr_dc.G).__name__ == "DCGANGenerator"
    with_da, _ = loop_rate([*sngan, "augment=diffaugment"], device, images, steps, warmup)

    from gan_cli.augment.diffaugment import DiffAugment

    x = images[:BATCH].float().div(127.5).sub(1.0)
    pipe = DiffAugment().bind(torch.Generator(device=device).manual_seed(0))
    theirs_fn = authors_diffaugment()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the authors' torch.meshgrid without indexing=
        reps = 50 if cuda else 20
        t_ours = augment_seconds(pipe, x, reps, device)
        t_theirs = augment_seconds(lambda v: theirs_fn(v, "color,translation,cutout"), x, reps, device)

    rows = [
        ("ResNet step: loop / bare Mimicry-style loop", f"{ours:.3f} / {bare:.3f} steps/s", ours / bare, ">= 0.9x"),
        ("ResNet / DCGAN (same loop, hinge, 5 D steps, SN)", f"{ours:.3f} / {dcgan:.3f} steps/s", ours / dcgan, "(cost)"),
        ("DiffAugment: authors' time / ours (fwd + bwd, one batch)", f"{t_theirs * 1e3:.2f} / {t_ours * 1e3:.2f} ms",
         t_theirs / t_ours, ">= 0.91x (within 1.1x)"),
        ("DiffAugment's share of a ResNet step: 11 calls / step", f"11 x {t_ours * 1e3:.2f} ms / {1e3 / ours:.0f} ms",
         11 * t_ours * ours, "<= 0.15"),
        ("  the same, as steps/s without / with augment=diffaugment", f"{ours:.3f} / {with_da:.3f} steps/s",
         ours / with_da - 1.0, "<= 0.15"),
    ]
    out.append(f"| {'row':58s} | {'measured':32s} | ratio | goal |")
    out.append(f"|{'-' * 60}|{'-' * 34}|------:|------|")
    for name, measured, ratio, goal in rows:
        out.append(f"| {name:58s} | {measured:32s} | {ratio:.2f} | {goal} |")
    text = "\n".join(out)
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
