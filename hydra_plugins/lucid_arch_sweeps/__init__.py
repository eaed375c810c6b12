"""lucid_arch's Hydra sweeper, where Hydra takes plugins from.

Hydra instantiates a sweeper only from a class *defined* in a ``hydra_plugins.*`` module, so the
class conf/hydra/default.yaml names is this subclass; what it does is in lucid_arch.cli.sweeper
(and lucid_arch.cli.launchers for the submitit launchers it runs). Hydra imports this module on
every start: it imports no torch, and no submitit.
"""

from lucid_arch.cli import sweeper as _sweeper


class Sweeper(_sweeper.Sweeper):
    """conf/hydra/default.yaml's sweeper: see lucid_arch.cli.sweeper."""
