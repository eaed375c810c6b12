"""Deployment: a model as a torch.export program (MODEL.pt2) and an ONNX file, with dynamic batch, height
and width, each checked against eager PyTorch at several sizes before it is called done.

``export_model`` (api.py) is the entry point, for Python and for the app's ``task=export``
(cli/export.py). The steps are small modules: dynamic.py (which sizes, and the smallest a
model's geometry allows), torch_program.py (torch.export), input_check.py (the .pt2's own
size check), onnx_model.py (torch.onnx, opset), metadata.py (task, class names, preprocessing:
what both files carry), verify.py (onnxruntime and torch against eager). Importing this package imports torch;
onnx, onnxscript and onnxruntime only when ONNX is written or checked (the ``export`` extra).
"""

from __future__ import annotations

from .api import ExportResult, export_model
from .dynamic import ExportSettingError, InputShapes, smallest_side
from .torch_program import ExportFailed
from .verify import Check, VerificationError

__all__ = ["Check", "ExportFailed", "ExportResult", "ExportSettingError", "InputShapes", "VerificationError", "export_model",
           "smallest_side"]
