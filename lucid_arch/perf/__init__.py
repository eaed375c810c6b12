"""What a model costs and how fast it runs.

    analysis.py         per-stage shapes, parameters and FLOPs, on the meta device (no weights)
    inference.py        prepare_for_inference: bf16 autocast, channels_last, torch.compile
    benchmarking.py     the timing harness: warm-up, alternating rounds, statistics, peak memory, JSON
    benchmark_suite.py  forward, inference-path, training-step and build benchmarks, against timm
"""
