"""Using a trained model: images in, labels out (torch; no Hydra).

- :mod:`.inputs`: what a file, folder or glob names, and each image decoded within the pixel bound;
- :mod:`.preprocess`: pixels -> the model's input, as a run's Preprocessing says;
- :mod:`.segment`: whole and slide inference, flip and multi-scale averaging, labels at each
  image's own size (``segment_probs``, ``post_process_semantic_segmentation``);
- :mod:`.resize`: full-size scores a band of rows at a time, for images too large to score whole;
- :mod:`.classify`: validation's crop, softmax, top k (``classify_probs``);
- :mod:`.detect`: a detector on images of any size, letterboxed in, boxes in each image's own pixels (``detect_batch``);
- :mod:`.predictor`: ``Predictor``, all of it behind one call;
- :mod:`.outputs`: what ``task=predict`` writes (label PNGs, overlays, predictions.json / .csv).
"""

from __future__ import annotations

from .classify import TopK, classify_probs, top_k
from .detect import DetectionResult, detect_batch
from .predictor import ClassificationResult, Predictor, SegmentationResult
from .segment import MS_SCALES, SegmentOptions, post_process_semantic_segmentation, segment_batch, segment_probs

__all__ = ["MS_SCALES", "ClassificationResult", "DetectionResult", "Predictor", "SegmentOptions", "SegmentationResult", "TopK", "classify_probs", "detect_batch",
           "post_process_semantic_segmentation", "segment_batch", "segment_probs", "top_k"]
