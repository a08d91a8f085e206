"""A user's own components for gan_cli, used without editing gan_cli: a least-squares GAN objective
(:mod:`gan_plugin.lsgan`) and an energy-distance metric (:mod:`gan_plugin.energy`).  Their configs are
in ``examples/plugin/conf``; see the README's "Extending" section for the command."""
