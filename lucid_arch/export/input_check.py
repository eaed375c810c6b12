"""The .pt2's own input check: an image outside the exported size range is refused with a sentence
naming the side, the bound and the range, instead of torch.export's raw ``Guard failed: x.size()[2] >= 61``.

What torch 2.13 does by itself: ``ExportedProgram.module()`` turns the program's range constraints
(height and width in [61, 4096] for pvt_v2_*) and the shape guards recorded while tracing into a
``_guards_fn`` that runs before the graph and raises ``AssertionError: Guard failed: x.size()[2] >= 61``.
A check written in the model (``torch._check(h >= 61, ...)``) never runs first: torch.export turns it
into that same range (and refuses a declared range that it narrows), and the guards run before
any node of the graph.

So the program that is saved is edited after tracing (the ONNX file comes from the unedited one):

- at the top of the graph, for each dynamic side, ``aten._assert_scalar(size >= min, MESSAGE)`` and
  ``aten._assert_scalar(size <= max, MESSAGE)``: standard ATen ops, kept by serialisation and
  ``run_decompositions``, raised as ``RuntimeError(MESSAGE)`` (AOTInductor turns them back into a
  range it checks in its own words: ``Expected s53 >= 61 to be True but received 40``);
- the side's range constraint widened to [2, unbounded], so torch emits no range guard of its own
  and the asserts are what an out-of-range size meets first (torch does not guard sizes of 2 or less);
- the tracer's shape guards dropped from ``.module()``'s guard function: each held over the whole
  declared range (torch.export proved it, or refused the range), which the asserts now enforce, and
  for a tiny image some of them would raise ``ZeroDivisionError`` before the asserts ran.

A graph holds no string operations, so the message is fixed when the file is written: it names the
side, the bound it broke and the accepted range, not the image's own size (the caller has that).
"""

from __future__ import annotations

import copy
import operator

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from .dynamic import AXES, InputShapes

SIDES = ("height", "width")


def message(name: str, side: str, too: str, lo: int, hi: int) -> str:
    """The one sentence for a ``side`` too small or too large (``too``) for the range lo..hi (hi None: unbounded)."""
    bound, word, which = (lo, "below", "smallest") if too == "small" else (hi, "above", "largest")
    accepted = f"{lo} to {hi} px" if hi is not None else f"{lo} px or more"
    return (f"{name}: the input image's {side} is {word} {bound} px, the {which} this exported program accepts "
            f"(height and width {accepted}, in a (batch, 3, height, width) input); resize the image as the "
            f"preprocessing in the file's lucid_arch.json says before calling the program.")


def with_size_checks(program: ExportedProgram, shapes: InputShapes, name: str) -> ExportedProgram:
    """A copy of ``program`` that refuses out-of-range heights and widths in words (see the module docstring).
    A program whose height and width are fixed is returned as it is (torch checks the exact size)."""
    from torch.utils._sympy.numbers import int_oo
    from torch.utils._sympy.value_ranges import ValueRanges

    sides = [s for s in SIDES if s in shapes.ranges]
    if not sides:
        return program
    gm = copy.deepcopy(program.graph_module)
    graph = gm.graph
    user = [s.arg.name for s in program.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]
    image = next(n for n in graph.nodes if n.op == "placeholder" and n.name == user[0])
    first = next(n for n in graph.nodes if n.op != "placeholder")
    ranges = dict(program.range_constraints)
    for side in sides:
        lo, hi = shapes.ranges[side]
        size = image.meta["val"].shape[AXES[side]]
        if not isinstance(size, torch.SymInt):
            continue
        ranges[size.node.expr] = ValueRanges(2, int_oo)
        with graph.inserting_before(first):
            node = graph.call_function(torch.ops.aten.sym_size.int, (image, AXES[side]))
            node.meta["val"] = size
            for op, bound, too in ((operator.ge, lo, "small"), (operator.le, hi, "large")):
                if bound is None:
                    continue
                ok = graph.call_function(op, (node, bound))
                ok.meta["val"] = op(size, bound)
                graph.call_function(torch.ops.aten._assert_scalar.default, (ok, message(name, side, too, lo, hi)))
    graph.lint()
    gm.recompile()
    checked = ExportedProgram(gm, graph, program.graph_signature, program.state_dict, ranges, program.module_call_graph,
                              program.example_inputs, program.constants, verifiers=program.verifiers)
    checked._guards_code = []  # implied by the range the asserts enforce (module docstring)
    return checked
