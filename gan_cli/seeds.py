"""Where every random stream of a run comes from: one table, one derivation.

Each purpose draws from its own ``torch.Generator`` seeded with ``base + STREAMS[purpose]``, so
that e.g. how often the loop logs never changes the training trajectory, and the evaluation
samples are the same whatever happened in training.  The base is the run's ``seed`` for
every stream except the real-data ones, whose base is ``metrics.real_seed`` (so runs with
different seeds are scored against the same real samples and share the feature cache).

============  =====  ===============================================================
stream        base   used for
============  =====  ===============================================================
init          seed   torch's global RNG before the nets are built (initial weights)
train         seed   every training draw: real batches, latents, penalty interpolates
estimate      seed   the held-out batch of the logged divergence estimate
fixed_z       seed   the fixed latent batch of the image grid (CPU, then moved)
pictures      seed   the latents of the 2-D scatter / 1-D density picture
pictures_real seed   the real points of that picture
augment       seed   the augment pipe's draws (gan_cli.augment): its own stream, so augment=none and a pipe
                     that does not fire take nothing from the train stream
eval          seed   the latents of every evaluation (gan-train's and gan-eval's: gan-eval
                     seed=S scores the same samples as the run trained with seed=S)
real_subset   real   which real images the real-side features use
eval_real     real   the real points of the toy metrics
============  =====  ===============================================================

A stream can have child streams that are not in the table: :func:`child_seed` hashes (base, purpose,
counters) with numpy's ``SeedSequence``, e.g. the streaming data sampler's seed from the train stream's
seed, and batch b's seed from that (:mod:`gan_cli.data.stream`).  Hashing, not ``base + n``: children of
nearby bases or counters never share a seed with each other or with the table's streams (except by a
2^-63 accident).

Several processes (:mod:`gan_cli.training.dist`): the ``train``, ``estimate`` and ``augment`` streams are per rank
(``rank=r``).  Rank 0 keeps the one-process seed; rank r > 0 draws from a seed mixed from
(stream seed, r) by numpy's ``SeedSequence``, so no rank shares a stream with another rank or with
another seed's run.  Every other stream is the same on every rank (identical initial weights, the
same evaluation latents).

The offsets keep the numbers of earlier gan_cli versions; streams of one run never share a
seed.  (Runs whose seeds differ by less than 12346 can share a seed *across* streams, e.g.
seed=0's ``train`` and seed=1's ``init``; they are different uses, so this does not correlate
anything that is compared.)
"""
from __future__ import annotations

import zlib

import numpy as np
import torch

STREAMS = {
    "init": 0,
    "train": 1,
    "estimate": 2,
    "fixed_z": 3,
    "pictures": 4,
    "pictures_real": 5,
    "augment": 6,
    "eval": 7,
    "real_subset": 0,
    "eval_real": 12345,
}


#: streams each rank of a multi-process run draws on its own
PER_RANK = ("train", "estimate", "augment")


def seed_for(base: int, stream: str, rank: int = 0) -> int:
    """The seed of ``stream`` for a run (or real-data) seed ``base``; ``rank`` > 0: that rank's own seed
    of a per-rank stream (:data:`PER_RANK`), a child of the stream's seed."""
    seed = int(base) + STREAMS[stream]
    if rank:
        if stream not in PER_RANK:
            raise ValueError(f"stream {stream} is shared by every rank (per-rank streams: {', '.join(PER_RANK)})")
        seed = child_seed(seed, "rank", int(rank))
    return seed


def generator(base: int, stream: str, device="cpu", rank: int = 0) -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` for ``stream`` (of ``rank``, see :func:`seed_for`)."""
    return torch.Generator(device).manual_seed(seed_for(base, stream, rank))


def child_seed(base: int, purpose: str, *counters: int) -> int:
    """A 63-bit seed for the child stream ``purpose`` (and ``counters``, e.g. a batch number) of a stream
    whose seed is ``base``: numpy ``SeedSequence([base, crc32(purpose), len(counters), *counters])``, a hash, so the
    children of one base are independent of each other and of ``base``'s own draws."""
    # the count of counters is hashed too: SeedSequence pads with zeros, so [b, p] and [b, p, 0] would collide
    entropy = [int(base) & 0xFFFFFFFFFFFFFFFF, zlib.crc32(purpose.encode("utf-8")), len(counters),
               *(int(c) for c in counters)]
    if any(c < 0 for c in entropy):
        raise ValueError(f"child_seed: counters must be >= 0, got {counters}")
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))
