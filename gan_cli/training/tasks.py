"""The loop's periodic work: a list of tasks it calls after every step, in order, each at its own cadence.

=============  ==================  ================================================================
task           when                what
=============  ==================  ================================================================
Logging        log_every, last     one host sync: the interval's mean losses, the divergence estimate on
                                   a held-out batch, grad norms, lr, the augment pipe's and the toy
                                   generators' scalars -> the loggers and ``scalars.jsonl``
Guard          log_every, last     a loss, estimate or weight that is NaN/inf stops the run (Diverged)
Progress       every step          the progress bar and ``status.json``'s step
Pictures       image_every, last   the sample grid (images) or scatter / density figure (toy data)
Evaluation     eval_every          the metric suite -> loggers and ``metrics.jsonl``; ``ckpt_best``'s file
Checkpoints    ckpt_every          a checkpoint (the newest ``keep_ckpts`` kept)
=============  ==================  ================================================================

The final checkpoint and evaluation are not tasks: :meth:`gan_cli.training.loop.Trainer.run` writes the
weights first, then evaluates, so a metric that fails never costs the trained weights.  With several
processes, a step on which a ``collective`` task ran (Logging, Checkpoints) is one where the ranks agree on a
signal any of them received.
"""
from __future__ import annotations

import math
import time
from typing import Optional

import torch

from gan_cli import seeds
from gan_cli.config import UserError
from gan_cli.files import read_json, write_json
from gan_cli.runs import checkpoint as ck
from gan_cli.runs import records
from gan_cli.training import dist


def all_finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


class Task:
    """Periodic work: ``due(step, last)`` says whether it runs after generator step ``step`` of ``last``."""

    every: int = 0
    collective = False  # several processes: the ranks share signals on a step where it ran
    main_only = False  # only rank 0 runs it
    interruptible = False  # a signal ends it at once (it takes a while: an evaluation, a picture)

    def due(self, step: int, last: int) -> bool:
        return bool(self.every) and step % self.every == 0

    def run(self, trainer) -> None:  # pragma: no cover - the interface
        raise NotImplementedError


class Logging(Task):
    collective = True

    def __init__(self, every: int):
        self.every = int(every)

    def due(self, step: int, last: int) -> bool:
        return step % self.every == 0 or step == last

    def run(self, trainer) -> None:
        trainer.last_host = trainer.log_scalars(trainer.last_extra)


class Guard(Logging):
    """The non-finite guard, on the host values Logging just read (one host sync for both)."""

    collective = False

    def run(self, trainer) -> None:
        trainer.check_finite(trainer.last_host)


class Progress(Task):
    def __init__(self, callback, logging: Logging):
        self.callback, self.logging = callback, logging

    def due(self, step: int, last: int) -> bool:
        return self.callback is not None

    def run(self, trainer) -> None:
        logged = self.logging.due(trainer.step, int(trainer.cfg.steps))
        self.callback(trainer.step, trainer.last_host if logged else None)


class Pictures(Task):
    main_only = True
    interruptible = True

    def __init__(self, every: int):
        self.every = int(every)

    def due(self, step: int, last: int) -> bool:
        return bool(self.every) and (step % self.every == 0 or step == last)

    def run(self, trainer) -> None:
        from gan_cli import viz

        G, cfg, info = trainer.sampling_G, trainer.cfg, trainer.info
        was = G.training
        G.eval()  # fixed latents through BN running stats: a stable picture over time
        with torch.no_grad():
            if info.kind == "image":  # a conditional run: one row per class (trainer.fixed_c)
                fake = G(trainer.fixed_z, trainer.fixed_c)
            else:
                gen = seeds.generator(cfg.seed, "pictures", trainer.device)
                fake = G(trainer.noise(2000, gen), trainer.classes(2000, gen))
        G.train(was)
        if info.kind == "image":
            trainer.loggers.log_image("samples", viz.image_grid(fake, nrow=trainer.grid_columns), trainer.step)
            return
        gen = seeds.generator(cfg.seed, "pictures_real", trainer.device)
        real = trainer.data.sample(2000, gen).x.cpu().numpy()
        fake = fake.cpu().numpy()
        title = f"{cfg.model.name} step {trainer.step}"
        if info.kind == "toy2d":
            centers = info.centers.cpu().numpy() if info.centers is not None else None
            fig = viz.scatter_figure(real, fake, centers, title)
        else:
            fig = viz.density_figure(real, fake, getattr(trainer.data, "density", None), title)
        trainer.loggers.log_figure("samples", fig, trainer.step)
        viz.close(fig)


class Evaluation(Task):
    interruptible = True

    def __init__(self, every: int, best: Optional["BestCheckpoint"] = None):
        self.every, self.best = int(every), best

    def due(self, step: int, last: int) -> bool:
        return bool(self.every) and step % self.every == 0 and step < last

    def run(self, trainer) -> dict:
        """The evaluator on the current generator: ``metrics/<name>`` in the loggers and one line in
        ``metrics.jsonl``; the best checkpoint kept when ``ckpt_best`` is set."""
        evaluator = trainer.evaluator
        if not evaluator.active:
            return {}
        from gan_cli.metrics.evaluator import generator_sampler

        t0 = time.time()
        if trainer.ctx.active:  # every rank generates its share of the samples; rank 0 scores them
            values = dist.evaluate(trainer.ctx, evaluator, trainer.sampling_G, trainer.latent_dim, trainer.device,
                                   trainer.cfg.seed)
            if not trainer.ctx.is_main:
                return {}
        else:
            values = evaluator(generator_sampler(trainer.sampling_G, trainer.latent_dim, trainer.device,
                                                 trainer.cfg.seed))
        trainer.loggers.log_scalars({f"metrics/{k}": v for k, v in values.items()}, trainer.step)
        mode = {"preprocess": evaluator.preprocess} if evaluator.preprocess else {}  # Inception only
        records.append(trainer.run_dir / records.METRICS, {"step": trainer.step, "time": t0,
                                                           "seconds": time.time() - t0, "suite": evaluator.suite,
                                                           **mode, **values})
        if self.best is not None:
            self.best.offer(trainer, values)
        return values


class Checkpoints(Task):
    collective = True

    def __init__(self, every: int):
        self.every = int(every)

    def due(self, step: int, last: int) -> bool:
        return bool(self.every) and step % self.every == 0 and step < last

    def run(self, trainer) -> None:
        trainer.checked_save()


class BestCheckpoint:
    """``ckpt_best=<metric>``: ``checkpoints/best.pt`` (and ``best.json``: step, key, value, direction) at the
    evaluation with the best value so far, in the direction the metric registry gives; never rotated away."""

    def __init__(self, name: str, evaluator, run_dir):
        from gan_cli.metrics.registry import direction

        if not evaluator.active:
            raise UserError(f"ckpt_best={name} needs metrics to evaluate; this run has none (metrics.suite="
                            f"{evaluator.suite}): choose metrics=toy|images|inception or drop ckpt_best.")
        if direction(str(name)) is None:
            raise UserError(f"ckpt_best={name}: no registered metric says whether lower or higher is better; use a "
                            f"metric name such as fid, kid, w1, rkl, modes, precision or recall.")
        saved = read_json(ck.best_path(run_dir).with_suffix(".json")) or {}
        self.name, self.direction = str(name), direction(str(name))
        self.value, self.key = saved.get("value"), saved.get("key")

    def offer(self, trainer, values: dict) -> None:
        key = self.key if self.key in values else next((k for k in values if k.startswith(self.name)), None)
        if key is None or not math.isfinite(values[key]):
            return
        v = values[key]
        if self.value is None or (v < self.value if self.direction == "min" else v > self.value):
            path = ck.best_path(trainer.run_dir)
            ck.save_checkpoint(path, trainer.state_dict())
            write_json(path.with_suffix(".json"), {"step": trainer.step, "key": key, "value": v,
                                                   "direction": self.direction})
            self.value, self.key = v, key


def make_tasks(cfg, best: Optional[BestCheckpoint] = None, progress=None) -> list:
    """The loop's tasks for run config ``cfg``, in the order they run after a step (Logging first: its cadence
    also says when the step computes gradient norms)."""
    logging = Logging(int(cfg.log_every))
    return [logging, Guard(int(cfg.log_every)), Progress(progress, logging), Pictures(int(cfg.image_every)),
            Evaluation(int(cfg.eval_every), best), Checkpoints(int(cfg.ckpt_every))]
