"""Many inputs -> a folder of predictions that a rerun resumes: what ``task=predict`` does.

The folder holds ``predictions.json``: the settings and model the outputs came from, and one entry
per image (a segmentation model's classes present with their pixel shares; a classifier's top k);
a detector's is ``detections.json`` (each image's boxes, scores and class names, in its own
pixels), beside ``drawn/`` (the boxes drawn on the images).
A rerun with ``skip_existing`` reads it, keeps every image whose outputs are all there, and predicts
the rest; when the settings or the weights differ, the old outputs are not the new model's and
mixing them would be silently wrong, so it stops and says how to go on (:class:`StaleOutputError`).
A segmentation run writes predictions.json at its start too (marked incomplete), so a run killed
half-way is recognised by the next one. Outputs are written whole or not at all (outputs.py).
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .inputs import Source
from .outputs import atomic, output_names, read_mask, save_mask, save_overlay, write_text
from .detect import DetectionResult
from .predictor import Predictor, SegmentationResult

PREDICTIONS = "predictions.json"
DETECTIONS = "detections.json"  # a detector's predictions.json
DRAWN = "drawn"  # a detector's pictures: boxes, labels and masks on the image
CSV_FILE = "predictions.csv"
LEGEND = "legend.png"
MASKS = "masks"
OVERLAYS = "overlays"
FORMAT_VERSION = 1


class StaleOutputError(ValueError):
    """The output folder holds another model's (or other settings') predictions; ``key`` names the setting."""

    key = "task.output"


@dataclass
class FolderOptions:
    output: Path
    overlay: bool = True
    opacity: float = 0.5
    skip_existing: bool = True
    formats: Sequence[str] = ("csv", "json")


@dataclass
class FolderReport:
    """What a folder run did; ``entries`` are predictions.json's images, in input order."""

    output: Path
    kind: str
    predicted: int = 0
    skipped: int = 0
    unreadable: list[dict[str, str]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # files (re)written, relative to output
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.predicted / self.seconds if self.seconds > 0 else 0.0


def predict_to_folder(
    predictor: Predictor,
    sources: Sequence[Source],
    options: FolderOptions,
    settings: dict[str, Any],
    ticker: Callable[[int], Any],
    on_unreadable: Optional[Callable[[Source, str], None]] = None,
    about: Optional[dict[str, Any]] = None,
) -> FolderReport:
    """Predict ``sources`` into ``options.output``; ``settings`` identify the model and how it predicts
    (compared with a previous run's), ``ticker(total)`` makes the progress display (a report.ticker.Ticker),
    ``about`` is kept in predictions.json for people (where the weights were) and never compared."""
    out = Path(options.output)
    listing = DETECTIONS if predictor.kind == "detection" else PREDICTIONS
    previous = _previous(out, settings, options.skip_existing, listing)
    report = FolderReport(output=out, kind=predictor.kind)
    done = {e["input"]: e for e in previous.get("images", [])} if previous else {}
    classes = list(predictor.classes)
    header = {"format": FORMAT_VERSION, "kind": predictor.kind, **(about or {}), "settings": settings, "classes": classes}
    if predictor.kind == "segmentation":
        from ..report.palette import palette

        colours = palette(len(classes))
        header["palette"] = colours.tolist()
        plan = _segmentation_plan(sources, out, options, done, classes, report)
    elif predictor.kind == "detection":
        from ..report.detections_draw import detection_colours

        colours = detection_colours(len(classes))
        header["colours"] = colours.tolist()
        plan = _detection_plan(sources, out, options, done, report)
    else:
        colours = None
        plan = _classification_plan(sources, out, options, done, report)
    entries = {source.relative: entry for source, entry in plan if entry is not None}
    todo = [source for source, entry in plan if entry is None]
    names = dict(zip((s.relative for s in sources), output_names(sources)))

    def unreadable(source: Source, why: str) -> None:
        print(f"lucid-arch: skipping unreadable image {source.path} ({why})", file=sys.stderr, flush=True)
        report.unreadable.append({"input": source.relative, "reason": why})
        tick.advance(note=f"{len(report.unreadable)} unreadable")
        if on_unreadable is not None:
            on_unreadable(source, why)

    if todo and previous is None and predictor.kind != "classification":  # a run killed from here on is recognised by the next one
        _write_json(out, {**header, "complete": False, "images": list(entries.values())}, report, listing)
    start = time.perf_counter()
    with ticker(len(todo)) as tick:
        for source, pixels, result in predictor.predict_files(todo, unreadable):
            if isinstance(result, SegmentationResult):
                entries[source.relative] = _write_segmentation(out, source, names[source.relative], pixels, result, options, colours, report)
            elif isinstance(result, DetectionResult):
                entries[source.relative] = _write_detection(out, source, names[source.relative], pixels, result, options, colours, report)
            else:
                entries[source.relative] = {"input": source.relative, "top": [t.to_dict() for t in result.top]}
            report.predicted += 1
            tick.advance()
    report.seconds = time.perf_counter() - start
    report.entries = [entries[s.relative] for s in sources if s.relative in entries]
    record = {**header, "complete": True, "images": report.entries, "unreadable": report.unreadable}
    if predictor.kind == "detection":
        _write_json(out, record, report, listing)
    elif predictor.kind == "segmentation":
        _write_json(out, record, report)
        if not (out / LEGEND).is_file():
            from ..report.palette import legend

            picture = legend(classes, colours)
            atomic(out / LEGEND, lambda tmp: picture.save(tmp, format="PNG"))
            report.written.append(LEGEND)
    else:
        if "json" in options.formats:
            _write_json(out, record, report)
        if "csv" in options.formats:
            _write_if_changed(out / CSV_FILE, _csv(report.entries, min(predictor.top_k, len(classes))), report)
    return report


def _previous(out: Path, settings: dict[str, Any], skip_existing: bool, listing: str = PREDICTIONS) -> Optional[dict[str, Any]]:
    """The last run's predictions.json (``listing``) when its outputs may be reused; StaleOutputError when they are another model's."""
    path = out / listing
    if not skip_existing or not path.is_file():
        return None
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise StaleOutputError(
            f"task.output = {out}: its {PREDICTIONS} cannot be read ({err}), so the outputs there cannot be told to be this "
            f"model's. Give another task.output, or task.skip_existing=false to predict every image again."
        ) from None
    old = previous.get("settings") if isinstance(previous, dict) else None
    if old != settings:
        changed = sorted(k for k in set(old or {}) | set(settings) if (old or {}).get(k) != settings.get(k))
        raise StaleOutputError(
            f"task.output = {out} holds predictions made with other settings or weights ({', '.join(changed) or 'unknown'} "
            f"differ; see its {PREDICTIONS}), which a rerun would mix with this one's. Give another task.output, or "
            f"task.skip_existing=false to predict every image again into it."
        )
    return previous


def _segmentation_plan(sources, out, options, done, classes, report) -> list[tuple[Source, Optional[dict]]]:
    plan = []
    for source, name in zip(sources, output_names(sources)):
        mask, overlay = out / MASKS / name, out / OVERLAYS / name
        if options.skip_existing and mask.is_file() and (not options.overlay or overlay.is_file()):
            entry = done.get(source.relative) or _entry(source, name, SegmentationResult(read_mask(mask), classes), options)
            plan.append((source, entry))
            report.skipped += 1
        else:
            plan.append((source, None))
    return plan


def _detection_plan(sources, out, options, done, report) -> list[tuple[Source, Optional[dict]]]:
    """A detector's image is done when detections.json lists it and (when drawing) its picture is there."""
    plan = []
    for source in sources:
        entry = done.get(source.relative) if options.skip_existing else None
        if entry is not None and options.overlay and not (out / str(entry.get("drawn", ""))).is_file():
            entry = None
        report.skipped += entry is not None
        plan.append((source, entry))
    return plan


def _write_detection(out, source, name, pixels, result, options, colours, report) -> dict[str, Any]:
    entry = {"input": source.relative, "size": list(result.size), "detections": result.detections()}
    if options.overlay:
        from ..report.detections_draw import draw_detections

        masks = None if result.masks is None else result.masks.numpy()
        picture = draw_detections(pixels.permute(1, 2, 0).cpu().numpy(), entry["detections"], colours, masks, options.opacity)
        atomic(out / DRAWN / name, lambda tmp: picture.save(tmp, format="PNG"))
        report.written.append(f"{DRAWN}/{name}")
        entry["drawn"] = f"{DRAWN}/{name}"
    return entry


def _classification_plan(sources, out, options, done, report) -> list[tuple[Source, Optional[dict]]]:
    files_there = all((out / (CSV_FILE if f == "csv" else PREDICTIONS)).is_file() for f in options.formats)
    plan = []
    for source in sources:
        entry = done.get(source.relative) if options.skip_existing and files_there else None
        report.skipped += entry is not None
        plan.append((source, entry))
    return plan


def _entry(source: Source, name: str, result: SegmentationResult, options: FolderOptions) -> dict[str, Any]:
    entry = {"input": source.relative, "mask": f"{MASKS}/{name}", "size": list(result.mask.shape), "classes": result.present()}
    if options.overlay:
        entry["overlay"] = f"{OVERLAYS}/{name}"
    return entry


def _write_segmentation(out, source, name, pixels, result, options, colours, report) -> dict[str, Any]:
    save_mask(out / MASKS / name, result.mask, len(result.classes))
    report.written.append(f"{MASKS}/{name}")
    if options.overlay:
        save_overlay(out / OVERLAYS / name, pixels, result.mask, colours, options.opacity)
        report.written.append(f"{OVERLAYS}/{name}")
    return _entry(source, name, result, options)


def _write_json(out: Path, record: dict[str, Any], report: FolderReport, listing: str = PREDICTIONS) -> None:
    _write_if_changed(out / listing, json.dumps(record, indent=1) + "\n", report)


def _write_if_changed(path: Path, text: str, report: FolderReport) -> None:
    """A rerun that found everything done leaves every file as it was (and says it wrote nothing)."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    write_text(path, text)
    if path.name not in report.written:
        report.written.append(path.name)


def _csv(entries: list[dict[str, Any]], k: int) -> str:
    """One row per image: the file, then id, name and score of each of its top k."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", *(f"top{r}_{part}" for r in range(1, k + 1) for part in ("id", "name", "score"))])
    for entry in entries:
        writer.writerow([entry["input"], *(v for t in entry["top"] for v in (t["index"], t["name"], f"{t['score']:.6f}"))])
    return out.getvalue()
