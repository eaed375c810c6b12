"""Rendering results for people: tables and the sweep plot. No torch, no Hydra.

    tables.py        one table as rich, plain text or markdown (the app, the benchmarks, sweep.md)
    sweep_plot.py    sweep.png: parameters against GFLOPs, and training curves (matplotlib's Agg canvas)
    sweep_styles.py  what a sweep varies -> colour and marker
    label_layout.py  job labels placed clear of each other and of the points
"""
