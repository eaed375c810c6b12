"""Scoring a trained model on labelled images, by mmsegmentation's protocol (torch; no Hydra).

    data.py     the images to score: shapes, a class folder, or image + label-map pairs at their own size
    figures.py  confusion matrices -> aAcc, mIoU, mAcc, top-1/top-5 and the per-class rows with names
    runner.py   the loops: each image through lucid_arch.inference, its prediction counted in a confusion matrix
    detection.py         a detector's figures: COCO's box and mask AP by pycocotools (needs lucid-arch[detection])
    detection_runner.py  a detector's loop: a split's detections, scored whole, and COCO's result format

The ``eval`` task (lucid_arch/cli/eval.py) maps ``task.*`` onto these and writes the reports.
"""

from __future__ import annotations

from .data import EvalSet, eval_set, resolve_split
from .figures import classification_metrics, per_class, segmentation_metrics
from .runner import EvalResult, evaluate_classification, evaluate_segmentation

__all__ = ["EvalResult", "EvalSet", "classification_metrics", "eval_set", "evaluate_classification", "evaluate_segmentation",
           "per_class", "resolve_split", "segmentation_metrics"]
