"""What a checkpoint holds of a run, and how a resumed run gets it back.

A checkpoint is a plain dict (it loads with ``torch.load(weights_only=True)``): the step, G, D, the optimisers,
the EMA of G, every random stream (and every rank's, with several processes), the partial sums of the logging
interval, the regularisers' counters, the augment pipe's state (its random stream, ADA's p), a streamed data
source's position, the fp16 loss scales, and the resolved config -- no logs (those are in the run folder's
``*.jsonl`` and the trackers').  A resumed run ends with the same weights and logged scalars as one that was
never interrupted (tested on the CPU).
"""
from __future__ import annotations

import torch

from gan_cli.build import plain_config
from gan_cli.config import UserError


def rng_state(trainer) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if trainer.device.type == "cuda" else [],
        "train": trainer.gen.get_state(),
        "estimate": trainer.est_gen.get_state(),
    }


def trainer_state(trainer, ranks_rng: list | None = None) -> dict:
    """``ranks_rng``: every rank's random streams (several processes), rank order."""
    t = trainer
    return {
        "world_size": t.ctx.world,
        **({"rng_ranks": ranks_rng[1:]} if ranks_rng and len(ranks_rng) > 1 else {}),
        "step": t.step,
        "generator": t.G.state_dict(),
        "discriminator": t.D.state_dict(),
        "opt_g": t.opt_g.state_dict(),
        "opt_d": t.opt_d.state_dict(),
        "rng": rng_state(t),
        # the partial sums of the current logging interval, so a resumed run logs the same means
        "acc": {"loss/d": t.acc["loss/d"].cpu(), "loss/g": t.acc["loss/g"].cpu(), "n": t.acc["n"]},
        "skips": t.skips,
        **({"generator_ema": t.ema.state_dict()} if t.ema is not None else {}),
        # the regularisers' counters (which D steps carry a lazy R1, how far instance noise has annealed)
        "regularizers": {name: r.state_dict() for name, r in t.regularizers.items()},
        # the augment pipe's random stream and adaptive state (ADA's p)
        **({"augment": t.augment.state_dict()} if t.augment is not None else {}),
        # an objective with state of its own (none of the built-in ones has any)
        **({"objective": t.objective.state_dict()} if hasattr(t.objective, "state_dict") else {}),
        # a data source with a position (the streaming sampler's batch count), so a resume is exact
        **({"data": t.data.state_dict()} if hasattr(t.data, "state_dict") else {}),
        "speed": t.speed.state_dict({"opt_g": t.opt_g, "opt_d": t.opt_d}),  # fp16 loss scales
        "config": plain_config(t.cfg),
        "info": {"name": t.info.name, "kind": t.info.kind, "shape": list(t.info.shape)},
    }


def restore(trainer, s: dict) -> None:
    """Load checkpoint ``s`` into ``trainer`` (a checkpoint of an earlier version too: its objective's R1 /
    instance-noise counter goes to the regularisers, PacGAN's D loses the ``inner.`` prefix of its old wrapper)."""
    t = trainer
    try:
        t.G.load_state_dict(s["generator"])
        t.D.load_state_dict(_unwrapped(s["discriminator"], t.D))
        t.opt_g.load_state_dict(s["opt_g"])
        t.opt_d.load_state_dict(s["opt_d"])
        if t.ema is not None:
            t.ema.load_state_dict(s["generator_ema"])
        if t.augment is not None:
            t.augment.load_state_dict(s["augment"])
    except (RuntimeError, KeyError, ValueError) as e:
        src = f"checkpoint {t.resume_from}" if t.resume_from else "checkpoint"
        detail = " ".join(ln.strip() for ln in str(e).splitlines()[:2])[:240]  # line 2 names the tensor
        raise UserError(f"{src} does not fit the configured architecture ({detail}).") from None
    t.step = int(s["step"])
    rng = s["rng"] if t.ctx.rank == 0 else s["rng_ranks"][t.ctx.rank - 1]  # this rank's streams
    torch.set_rng_state(rng["torch"])
    if t.device.type == "cuda" and rng["cuda"]:
        torch.cuda.set_rng_state_all(rng["cuda"])
    t.gen.set_state(rng["train"])
    t.est_gen.set_state(rng["estimate"])
    t.acc = {"loss/d": s["acc"]["loss/d"].to(t.device), "loss/g": s["acc"]["loss/g"].to(t.device),
             "n": int(s["acc"]["n"])}
    t.skips = int(s.get("skips", 0))
    t.speed.load_state_dict(s.get("speed") or {}, {"opt_g": t.opt_g, "opt_d": t.opt_d})
    saved = s.get("regularizers")
    if saved is None:  # an earlier version: one counter of D steps, kept by the objective
        d_calls = int((s.get("objective") or {}).get("d_calls", 0))
        saved = {name: {"d_steps": d_calls} for name in t.regularizers}
    for name, r in t.regularizers.items():
        r.load_state_dict(saved.get(name) or {})
    if hasattr(t.objective, "load_state_dict"):
        t.objective.load_state_dict(s.get("objective") or {})
    if hasattr(t.data, "load_state_dict"):
        t.data.load_state_dict(s.get("data"))


def _unwrapped(state: dict, D: torch.nn.Module) -> dict:
    """D's saved weights under today's names: an earlier version wrapped a packed D in a module (``inner.``)."""
    own = D.state_dict()
    if all(k in own for k in state) or not all(k.startswith("inner.") for k in state):
        return state
    return {k[len("inner."):]: v for k, v in state.items()}
