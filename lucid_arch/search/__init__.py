"""Architecture search (``hydra/sweeper=optuna``): the pieces that are data and arithmetic.

The sweeper itself is lucid_arch.cli.search_sweeper. Here: the search space read from Hydra's
override syntax (space), the objectives and their directions (objectives), the ``search`` node
of the job config (settings), a candidate judged before anything is built (candidate), the
non-dominated set (pareto), the job's side of a trial (trial: pruning per epoch, latency) and
the report's pareto.csv / pareto.md (front_report). Optuna is imported only where a study is
touched, torch only where a model is analysed or timed.
"""
