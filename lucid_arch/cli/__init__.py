"""The ``lucid-arch`` Hydra app: inspect one variant, or sweep many, locally or on a cluster.

app.py is the console entry (torch-free), jobs.py runs one job and records it, summary.py is
the default task, sweep_report.py collects a multirun into one table, CSV and plot (sweep_plot.py
draws it, styled by what the sweep varies: sweep_styles.py; its labels placed by label_layout.py).
"""
