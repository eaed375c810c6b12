"""``lucid-arch-diff OLD NEW``: what a config change does to the architecture.

Exit status as ``diff``: 0 no architectural change, 1 changes, 2 trouble (a side that cannot
be found or is invalid, a bad argument). torch is imported only once both sides validate.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence, TextIO

from ..safe_io import write_text_atomic
from ..extras import MissingExtra

EPILOG = """\
sides:
  pvt_v2_b2                         a variant name (conf/model/pvt_v2_b2.yaml)
  path/to/variant.yaml              a YAML file; inside a conf/model/ tree its parents are that tree's
  REV:conf/model/pvt_v2_b2.yaml     the file at a git revision, composed against conf/ at that revision
                                    (path relative to the repository root, as in `git show`)

a whole pull request (CI):
  lucid-arch-diff --review origin/main --format md --output comment.md
                                    every variant of conf/model at the revision against the working tree

overrides (model fields only, Hydra syntax, quote brackets):
  lucid-arch-diff pvt_v2_b2 pvt_v2_b2 --new 'model.depths=[3,4,18,3]'
  lucid-arch-diff origin/main:conf/model/pvt_v2_b2.yaml conf/model/pvt_v2_b2.yaml --both model.img_size=384

exit status: 0 no architectural change, 1 changes, 2 anything else (an invalid side, unreadable input,
an internal error). Every config is treated as hostile: nothing in it is executed, interpolated or
followed outside its directory (see docs/security.md).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lucid-arch-diff",
        description="Compare two model configs: changed fields and where they are set, stages, parameters, "
        "GFLOPs, checkpoint compatibility. No weights are allocated and nothing in a config is executed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("old", metavar="OLD", nargs="?", help="variant name, YAML path or REV:path")
    p.add_argument("new", metavar="NEW", nargs="?", help="variant name, YAML path or REV:path")
    p.add_argument(
        "--review",
        metavar="REV",
        help="compare every variant of TREE/model at git revision REV with the working tree (instead of OLD NEW)",
    )
    p.add_argument("--tree", default="conf", help="the config tree --review reads, relative to the repository root (default: conf)")
    p.add_argument("--output", metavar="FILE", help="write the report to FILE instead of stdout")
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


EXIT_TROUBLE = 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the tool; every failure is one paragraph on stderr and exit 2, never a traceback."""
    p = parser()
    args = p.parse_args(argv)
    if (args.review is None) != (args.old is not None and args.new is not None) or (args.review and args.old):
        p.error("give OLD and NEW, or --review REV")
    if args.output and not Path(args.output).expanduser().parent.is_dir():
        p.error(f"--output {args.output}: no such directory {Path(args.output).expanduser().parent}")
    out: TextIO = io.StringIO() if args.output else sys.stdout  # the file is written whole at the end, or not at all
    try:
        code = _review(args, out) if args.review else _run(args, out)
        if args.output:
            try:
                write_text_atomic(Path(args.output).expanduser(), out.getvalue())
            except OSError as err:
                print(f"lucid-arch-diff: --output {args.output}: {err.strerror or err} (exit 2).", file=sys.stderr)
                return EXIT_TROUBLE
        sys.stdout.flush()  # here, not at exit, where a closed pipe would make Python exit 120
        return code
    except BrokenPipeError:  # `lucid-arch-diff ... | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_TROUBLE
    except MissingExtra as err:  # a detector's costs need torchvision: the one sentence naming the pip command
        print(f"lucid-arch-diff: {err} (exit 2)", file=sys.stderr)
        return EXIT_TROUBLE
    except Exception as err:  # noqa: BLE001 - exit 1 means "changed", so a crash must not look like one
        from ..config.model_files import quote

        print(f"lucid-arch-diff: internal error: {type(err).__name__}: {quote(err, 300)} (exit 2).", file=sys.stderr)
        return EXIT_TROUBLE


def _prefetch_analysis() -> threading.Thread:
    """Import torch and the analysis while the sides compose in their children (~1 s saved per diff)."""
    import importlib

    thread = threading.Thread(target=importlib.import_module, args=("lucid_arch.perf.analysis",), daemon=True)
    thread.start()
    return thread


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from .sides import SideError, load_sides

    prefetch = _prefetch_analysis()
    try:
        old, new = load_sides(
            [("old", args.old, [*args.both, *args.old_overrides]), ("new", args.new, [*args.both, *args.new_overrides])]
        )
    except SideError as err:
        print(f"lucid-arch-diff: {err}", file=sys.stderr)
        return EXIT_TROUBLE
    finally:
        prefetch.join()
    from .compare import compare

    report = compare(old, new)
    if args.format == "term":
        from .render_term import render

        render(report, out)
    else:
        from .render_json import render as render_json
        from .render_md import render as render_md

        print(render_md(report) if args.format == "md" else render_json(report), file=out)
    return report.exit_code


def _review(args: argparse.Namespace, out: TextIO) -> int:
    from . import render_review
    from .review import review
    from .trees import TreeError

    if args.both or args.old_overrides or args.new_overrides:
        print("lucid-arch-diff: --review compares the variants as they are; it takes no overrides.", file=sys.stderr)
        return EXIT_TROUBLE
    prefetch = _prefetch_analysis()
    try:
        result = review(args.review, args.tree)
    except TreeError as err:
        print(f"lucid-arch-diff: {err}", file=sys.stderr)
        return EXIT_TROUBLE
    finally:
        prefetch.join()
    if args.format == "term":
        render_review.render_term(result, out)
    else:
        print(render_review.render_md(result) if args.format == "md" else render_review.render_json(result), file=out)
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
