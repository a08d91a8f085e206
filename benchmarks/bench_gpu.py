"""The GPU speed path, side by side in one run: ONE table of ratios (not a test; `make bench-gpu`).

    .venv/bin/python benchmarks/bench_gpu.py                 # full sizes on CUDA (what the targets are about)
    .venv/bin/python benchmarks/bench_gpu.py --quick         # small sizes; runs on the CPU too

Rows (each a ratio of two measurements taken in this process, one after the other):

* train: ``gan-train``'s training step (:class:`gan_cli.training.loop.Trainer.train_step`, NS-GAN, DCGAN nets of
  net=dcgan, 28x28x1 as data=fashion_mnist and 32x32x3 as data=cifar10, batch 64/128/256) with every speed
  switch on (``speed.*`` auto: bf16 autocast, channels_last, fused Adam, TF32; plus ``speed.compile=true``)
  vs a bare float32 loop in the style of pytorch/examples ``dcgan/main.py`` on the same nets (BCE, Adam
  with torch's defaults, ``cudnn.benchmark = True``, torch's default TF32 flags).  Both draw batches from
  the same on-device uint8 tensor of random images (throughput does not depend on pixel values; the data
  sets cannot be downloaded here), both read the losses on the host every 50 steps.  gan_cli's step does
  one more G forward than the example (a no-grad one for D's batch, one with grad for G's), as
  ``Trainer.train_step`` does: the ratio is conservative.  Compile time is excluded (warm-up) and shown.
* features: Inception pool3 features of N uint8 images (32x32x3, resized to 299) with gan_cli's extractor
  (:func:`gan_cli.metrics.features.extract_features`, preprocess=torch_fidelity) vs torch-fidelity 0.4's
  ``FeatureExtractorInceptionV3`` called batch by batch the same way; the same random weights in both
  (tests/conftest.py ``random_inception_state``; the real file cannot be downloaded here, and time does not
  depend on the values).  Ratio: torch-fidelity time / ours (target: >= 1/1.2, "within 1.2x").
* prdc: precision/recall/density/coverage of N x N features (2048-d, k=5), gan_cli
  :func:`gan_cli.metrics.prdc.prdc` on the device (float64 tiles) vs prdc 0.2 ``compute_prdc`` on the CPU
  (float32, full N x N matrices).

Targets (on a GPU, full sizes): train >= 3x at batch 128; features >= 0.83x; prdc >= 20x.  On the CPU
(--quick) the switches that are CUDA-only stay off (auto), bf16/channels_last are forced on to run the
code, compile is skipped unless --compile, and the ratios say nothing about a GPU.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch._dynamo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import compose_train, random_inception_state  # noqa: E402

TARGETS = {"train_b128": 3.0, "features": 1 / 1.2, "prdc": 20.0}


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def device_name(device) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"CPU {line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


@contextlib.contextmanager
def torch_defaults():
    """torch's process-wide numerics flags as a fresh process has them (the speed path changes TF32)."""
    saved = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved[1], saved[2]


def random_images(n, shape, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8).to(device)


# ----------------------------------------------------------------------------- training step


DATA = {28: ("fashion_mnist", (1, 28, 28)), 32: ("cifar10", (3, 32, 32))}


def gan_cli_steps(size, batch, steps, warmup, device, speed, tmp, channels=64):
    """steps/s of Trainer.train_step on synthetic uint8 images of the data set's shape; (rate, warm-up s)."""
    import gan_cli.build as build
    import gan_cli.training.loop as loop
    from gan_cli.data.base import DataInfo
    from gan_cli.data.images import ImageSource

    name, shape = DATA[size]
    images = random_images(4096, shape, device)
    cfg = compose_train(f"data={name}", f"data.batch_size={batch}", f"device={device}", "metrics=none", "image_every=0",
                        "net=dcgan", f"net.channels={channels}", *speed, tmp_path=tmp)
    real_build = build.build_data
    build.build_data = lambda data_cfg, dev: ImageSource(DataInfo(name=name, kind="image", shape=shape), images, None,
                                                         torch.device(dev))
    try:
        tr = loop.build_trainer(cfg, tmp)
    finally:
        build.build_data = real_build
    t0 = time.perf_counter()
    for _ in range(warmup):
        tr.train_step(False)
    sync(device)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        tr.train_step(False)
        if (i + 1) % 50 == 0:
            tr.acc["loss/d"].item()  # the log step's host sync
    sync(device)
    return steps / (time.perf_counter() - t0), warm, tr.speed.plan.describe()


def bare_steps(size, batch, steps, warmup, device, channels=64):
    """pytorch/examples dcgan/main.py's iteration on the same DCGAN nets, float32, no speed switches."""
    from gan_cli.data.base import DataInfo
    from gan_cli.nets.dcgan import build

    name, shape = DATA[size]
    nz = 100
    images = random_images(4096, shape, device)
    torch.manual_seed(0)
    netG, netD = build(DataInfo(name=name, kind="image", shape=shape), nz, channels=channels)
    netG, netD = netG.to(device), netD.to(device)
    criterion = torch.nn.BCEWithLogitsLoss()  # the example's Sigmoid + BCELoss, as one stable op (our D has no sigmoid)
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator(device=device).manual_seed(1)
    label = torch.empty(batch, device=device)

    def step():
        idx = torch.randint(0, images.shape[0], (batch,), generator=gen, device=device)
        real = images[idx].float().div_(127.5).sub_(1.0)
        netD.zero_grad()
        label.fill_(1.0)
        errD_real = criterion(netD(real).view(-1), label)
        errD_real.backward()
        noise = torch.randn(batch, nz, 1, 1, generator=gen, device=device)
        fake = netG(noise)
        label.fill_(0.0)
        errD_fake = criterion(netD(fake.detach()).view(-1), label)
        errD_fake.backward()
        optD.step()
        netG.zero_grad()
        label.fill_(1.0)
        errG = criterion(netD(fake).view(-1), label)
        errG.backward()
        optG.step()
        return errD_real + errD_fake

    with torch_defaults():
        torch.backends.cudnn.benchmark = True  # as the example sets
        for _ in range(warmup):
            step()
        sync(device)
        t0 = time.perf_counter()
        for i in range(steps):
            err = step()
            if (i + 1) % 50 == 0:
                err.item()
        sync(device)
        return steps / (time.perf_counter() - t0)


def bench_train(rows, a, device):
    cuda = torch.device(device).type == "cuda"
    speed = ["speed.amp=auto", "speed.channels_last=auto", "speed.optimizer=auto", "speed.tf32=auto"]
    if not cuda:  # run the code paths the CPU has; fused Adam and TF32 are CUDA matters
        speed = ["speed.amp=bf16", "speed.channels_last=on", "speed.optimizer=foreach"]
    if a.compile:
        speed.append("speed.compile=true")
    sizes, batches = (28, 32), (a.batches or ((8, 16) if a.quick else (64, 128, 256)))
    steps, warmup = (a.steps or (3 if a.quick else 300)), (1 if a.quick else 20)
    ch = a.channels or (8 if a.quick else 64)
    for size in sizes:
        for batch in batches:
            torch._dynamo.reset()  # each row compiles afresh (and stays under the recompile limit)
            bare = bare_steps(size, batch, steps, warmup, device, ch)
            with tempfile.TemporaryDirectory() as tmp:
                ours, warm, plan = gan_cli_steps(size, batch, steps, warmup, device, speed, tmp, ch)
            target = TARGETS["train_b128"] if batch == 128 else None
            rows.append((f"train {size}x{size} batch {batch} (steps/s)", ours, bare, ours / bare, target,
                         f"warm-up {warm:.1f} s"))
    rows.append(("", None, None, None, None, f"train: DCGAN nets net.channels={ch}, {steps} timed steps; gan_cli "
                                            f"{plan.split(': ', 1)[1]}"))


# ----------------------------------------------------------------------------- features


def bench_features(rows, a, device, weights):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from gan_cli.metrics.features import extract_features, tensor_sampler
    from gan_cli.metrics.inception import get_inception

    n, batch = (a.feature_n or (32 if a.quick else 50000)), (16 if a.quick else 500)
    images = random_images(n, (3, 32, 32), device, seed=2)
    ours = get_inception(str(weights), device, download=False, preprocess="torch_fidelity")
    ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights)).to(device)

    def run_ours():
        return extract_features(ours, tensor_sampler(images), n, batch, device, keys=["pool"])["pool"]

    def run_ref():  # torch-fidelity's loop: uint8 batches in, features gathered on the CPU
        out = []
        with torch.no_grad():
            for i in range(0, n, batch):
                (f,) = ref(images[i:i + batch])
                out.append(f.cpu())
        return torch.cat(out).numpy()

    warm = images[:batch]  # warm-up on one batch (cuDNN autotuning, lazy allocations)
    extract_features(ours, tensor_sampler(warm), warm.shape[0], batch, device, keys=["pool"])
    with torch.no_grad():
        ref(warm[:batch])
    sync(device)
    t_ours, f_ours = timed(run_ours, device)
    t_ref, f_ref = timed(run_ref, device)
    rel = float(np.abs(f_ours - f_ref).max() / (np.abs(f_ref).max() + 1e-12))
    rows.append((f"features {n} x Inception pool3 (images/s)", n / t_ours, n / t_ref, t_ref / t_ours,
                 TARGETS["features"], f"max rel diff {rel:.1e}"))


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


# ----------------------------------------------------------------------------- prdc


def bench_prdc(rows, a, device):
    from prdc import compute_prdc

    from gan_cli.metrics.prdc import prdc

    n, d = (a.prdc_n or (1000 if a.quick else 50000)), 2048
    rng = np.random.default_rng(1)
    real = rng.standard_normal((n, d), dtype=np.float32)
    fake = (rng.standard_normal((n, d), dtype=np.float32) * 1.05 + 0.02).astype(np.float32)
    rt, ft = torch.from_numpy(real).to(device), torch.from_numpy(fake).to(device)
    prdc(rt[:64], ft[:64], k=5)  # warm-up (CUDA context, cdist kernels)
    t_ours, ours = timed(lambda: prdc(rt, ft, k=5), device)
    with contextlib.redirect_stdout(io.StringIO()):
        t_ref, theirs = timed(lambda: compute_prdc(real, fake, 5), "cpu")
    diff = max(abs(ours[k] - float(theirs[k])) for k in ours)
    rows.append((f"prdc {n} x {n} x {d} (s)", t_ours, t_ref, t_ref / t_ours, TARGETS["prdc"],
                 f"ours on {torch.device(device).type}, prdc on CPU; max |diff| {diff:.1e}"))


# ----------------------------------------------------------------------------- the table


def table(rows, header, judge: bool) -> str:
    """The one table; ``judge``: say whether each target is met (full sizes on CUDA only: the targets are a GPU's)."""
    out = [header, "", f"{'measurement':44s} {'gan_cli':>12s} {'reference':>12s} {'ratio':>8s} {'target':>8s}  note",
           "-" * 110]
    for name, ours, ref, ratio, target, note in rows:
        if ours is None:
            out.append(f"{'':44s} {'':>12s} {'':>12s} {'':>8s} {'':>8s}  {note}")
            continue
        t = f">={target:.2f}" if target else ""
        met = "" if not target else ("  (GPU target; not judged here)" if not judge else
                                     "  (met)" if ratio >= target else "  (NOT met)")
        out.append(f"{name:44s} {ours:12.4g} {ref:12.4g} {ratio:7.2f}x {t:>8s}  {note}{met}")
    return "\n".join(out)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a minute or two on the CPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="speed.compile=true in the training rows (default: on CUDA yes, on the CPU no)")
    ap.add_argument("--sections", default="train,features,prdc")
    ap.add_argument("--steps", type=int, default=0, help="timed training steps per row")
    ap.add_argument("--batches", type=int, nargs="*", default=None)
    ap.add_argument("--channels", type=int, default=0, help="DCGAN net.channels (default 64; --quick 8)")
    ap.add_argument("--feature-n", type=int, default=0)
    ap.add_argument("--prdc-n", type=int, default=0)
    a = ap.parse_args(argv)
    device = a.device
    if a.compile is None:
        a.compile = torch.device(device).type == "cuda"
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"bench_gpu {'--quick ' if a.quick else ''}on {device_name(device)}, {when}, torch {torch.__version__}, "
              f"compile {'on' if a.compile else 'off'}")
    rows: list = []
    sections = a.sections.split(",")
    if "train" in sections:
        bench_train(rows, a, device)
    if "features" in sections:
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / "pt_inception-2015-12-05-6726825d.pth"
            torch.save(random_inception_state(), weights)
            bench_features(rows, a, device, weights)
    if "prdc" in sections:
        bench_prdc(rows, a, device)
    text = table(rows, header, judge=torch.device(device).type == "cuda" and not a.quick)
    print(text)
    return text


if __name__ == "__main__":
    main()
