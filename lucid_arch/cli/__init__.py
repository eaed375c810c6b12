"""The ``lucid-arch`` Hydra app: inspect one variant, or sweep many, locally or on a cluster.

app.py is the console entry (torch-free), jobs.py runs one job and records it, summary.py is
the default task, sweep_report.py collects a multirun into one table, CSV and plot (drawn by
lucid_arch.report). It knows tasks and Hydra; what a layer is, it leaves to lucid_arch.modeling.
"""
