"""Generator / discriminator architectures, one builder per YAML in ``conf/net/``.

A builder is ``build(info, latent_dim, d_norm, **params) -> (G, D)``.  Every generator is called as
``G(z, c)``: ``(N, latent_dim)`` latents and the class labels ``c`` (int64 ``(N,)``, or None) to
``(N, *info.shape)`` (images through ``tanh``, in [-1, 1]); every discriminator as ``D(x, c)``, returning the
raw output (logit / critic value) of shape ``(N,)``.  The nets here are unconditional: they accept ``c`` and
ignore it.  ``d_norm`` (``batch`` | ``layer`` | ``none``, from ``model.d_norm``) only affects nets with
normalisation.  A net that does not fit the data is a one-line UserError.  PacGAN's packing
(``model.pack=m``) builds D for ``m`` samples concatenated (:func:`gan_cli.build.build_nets`); the
samples are packed on the one path into D (:mod:`gan_cli.training.step`).

=========  ====================  ==========================================================
builder    data                  G / D
=========  ====================  ==========================================================
mlp        any (toy, images)     ReLU MLP / LeakyReLU(0.2) MLP, ``net.depth`` x ``net.hidden``
dcgan      images 8, 16, 28,     DCGAN transposed convs + BN + tanh / strided convs, norm
           32, 64, 128 square    per ``d_norm``, width ``net.channels``
theta      2-D toy (``lines``)   ``(theta, Phi(z_0))``, one parameter / MLP
gaussian   1-D toy (``mog1d``)   ``mu + sigma z_0`` / MLP
auto       any                   the data set's ``default_net``
=========  ====================  ==========================================================
"""
from __future__ import annotations

from .dcgan import SIZES as DCGAN_SIZES
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init
from .mlp import MLPDiscriminator, MLPGenerator
from .toy import GaussianGenerator, ThetaGenerator

__all__ = ["MLPGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator", "ThetaGenerator",
           "GaussianGenerator", "dcgan_init", "DCGAN_SIZES"]
