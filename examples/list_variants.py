"""Print every shipped variant with its parameter count, GFLOPs and output shapes.

    python examples/list_variants.py            # all variants, 224 px
    python examples/list_variants.py 'pvt_v2_*' # a glob

Nothing is allocated: each model is analysed on the meta device (lucid_arch.analyze).
"""

from __future__ import annotations

import sys

import lucid_arch


def main(pattern: str = "*") -> None:
    names = lucid_arch.list_models(pattern)
    if not names:
        sys.exit(f"no variant matches {pattern!r}; variants: {', '.join(lucid_arch.list_models())}")
    print(f"{'variant':<14}{'params':>14}{'GFLOPs':>9}  {'logits':<11}last feature map")
    for name in names:
        report = lucid_arch.analyze(lucid_arch.load_config(name))
        print(
            f"{name:<14}{report.params:>14,}{report.gflops:>9.2f}  "
            f"{str(report.logits_shape):<11}{report.feature_shapes[-1]}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:2])
