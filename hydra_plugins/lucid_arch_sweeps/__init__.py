"""lucid_arch's Hydra sweepers, where Hydra takes plugins from.

Hydra instantiates a sweeper only from a class *defined* in a ``hydra_plugins.*`` module, so the
classes conf/hydra/sweeper/*.yaml name are these subclasses; what they do is in
lucid_arch.cli.sweeper (grid sweeps, and lucid_arch.cli.launchers for the submitit launchers
they run) and lucid_arch.cli.search_sweeper (``hydra/sweeper=optuna``). Hydra imports this module
on every start: it imports no torch, no submitit and no Optuna.
"""

from lucid_arch.cli import search_sweeper as _search_sweeper
from lucid_arch.cli import sweeper as _sweeper


class Sweeper(_sweeper.Sweeper):
    """conf/hydra/sweeper/grid.yaml's sweeper (the app's default): see lucid_arch.cli.sweeper."""


class OptunaSweeper(_search_sweeper.OptunaSweeper):
    """conf/hydra/sweeper/optuna.yaml's sweeper, an architecture search: see lucid_arch.cli.search_sweeper."""
