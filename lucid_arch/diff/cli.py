"""``lucid-arch-diff OLD NEW``: what a config change does to the architecture.

Exit status as ``diff``: 0 no architectural change, 1 changes, 2 trouble (a side that cannot
be found or is invalid, a bad argument). torch is imported only once both sides validate.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

EPILOG = """\
sides:
  pvt_v2_b2                         a variant name (conf/model/pvt_v2_b2.yaml)
  path/to/variant.yaml              a YAML file; inside a conf/model/ tree its parents are that tree's
  REV:conf/model/pvt_v2_b2.yaml     the file at a git revision, composed against conf/ at that revision
                                    (path relative to the repository root, as in `git show`)

overrides (Hydra syntax, quote brackets):
  lucid-arch-diff pvt_v2_b2 pvt_v2_b2 --new 'model.depths=[3,4,18,3]'
  lucid-arch-diff origin/main:conf/model/pvt_v2_b2.yaml conf/model/pvt_v2_b2.yaml --both model.img_size=384

exit status: 0 no architectural change, 1 changes, 2 error or an invalid side
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lucid-arch-diff",
        description="Compare two model configs: changed fields and where they are set, stages, parameters, "
        "GFLOPs, checkpoint compatibility. No weights are allocated and nothing in a config is executed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("old", metavar="OLD", help="variant name, YAML path or REV:path")
    p.add_argument("new", metavar="NEW", help="variant name, YAML path or REV:path")
    for flag, dest, text in (
        ("--old", "old_overrides", "for OLD only"),
        ("--new", "new_overrides", "for NEW only"),
        ("--both", "both", "for both sides, e.g. model.img_size=384"),
    ):
        p.add_argument(
            flag, dest=dest, metavar="OVERRIDE", action="append", default=[], help=f"override {text} (repeatable)"
        )
    p.add_argument(
        "--format",
        choices=("term", "md", "json"),
        default="term",
        help="term (default; colour on a tty), md (PR comment), json (CI)",
    )
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    from .compare import compare
    from .sides import SideError, load_side

    try:
        old = load_side("old", args.old, [*args.both, *args.old_overrides])
        new = load_side("new", args.new, [*args.both, *args.new_overrides])
    except SideError as err:
        print(f"lucid-arch-diff: {err}", file=sys.stderr)
        return 2
    report = compare(old, new)
    if args.format == "term":
        from .render_term import render

        render(report, sys.stdout)
    else:
        from .render_json import render as render_json
        from .render_md import render as render_md

        print(render_md(report) if args.format == "md" else render_json(report))
    return report.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
