"""The end of a multirun: every job's summary.json gathered into sweep.csv, sweep.md, sweep.png.

It runs as a Hydra callback in the process that launched the sweep, whatever the launcher
(basic, joblib, submitit on SLURM), and reads only what is on disk: the jobs' directories
(those holding Hydra's ``.hydra/overrides.yaml``) and the sweep's ledger (lucid_arch.cli.sweep_ledger),
which lists every job launched and what the launcher said of those that died. So every job is
a row: ``ok``; ``failed`` with its error (a job that crashed, was cancelled or ran out of memory or
time, with the scheduler's word for it); ``interrupted``, a job whose summary.json still says
"running" although its process is gone (killed: lucid_arch/runs/status.py); or ``missing``, a job
that never started.

A search (``hydra/sweeper=optuna``) adds two kinds of row: ``rejected``, a candidate refused
before anything was built (its reason in the error column, its analysed cost when it had one),
and ``pruned``, a training its pruner stopped early; and the Pareto front (pareto.csv,
pareto.md, lucid_arch.search.front_report), drawn in sweep.png (lucid_arch.report.pareto_plot).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..runs import job_status
from ..runs.metrics_file import read_metrics
from ..safe_io import atomic_write, read_bounded, write_text_atomic
from . import stopping
from .jobs import MAX_RECORD_BYTES, SUMMARY_FILE, read_json
from .sweep_ledger import job_dirs, read_ledger
from ..report.tables import Table, cell, to_markdown

FIXED_COLUMNS = ("job", "overrides", "model", "status")
NOT_FAILED = ("ok", "pruned", "rejected")  # a pruned or rejected search candidate is the search working, not a failure
_failed = 0  # failed jobs of the last sweep in this process; the app's exit status reads it


def failed_jobs() -> int:
    return _failed


def reset() -> None:
    """Forget the last sweep's failures (the app runs more than once in one process in tests)."""
    global _failed
    _failed = 0


def _read_job(job_dir: Path, sweep_dir: Path, launcher_said: str = "") -> dict[str, Any]:
    import yaml

    try:
        overrides = yaml.safe_load(read_bounded(job_dir / ".hydra" / "overrides.yaml", MAX_RECORD_BYTES)) or []
    except (OSError, ValueError, yaml.YAMLError):
        overrides = []
    if not isinstance(overrides, list):
        overrides = []
    summary_path = job_dir / SUMMARY_FILE
    try:
        record = read_json(summary_path)
    except FileNotFoundError:
        record = {"status": "failed", "error": f"no {SUMMARY_FILE}: the job crashed or was killed before finishing"}
    except (OSError, ValueError) as exc:  # damaged JSON, or a FIFO or a huge file in its place (never waited on or read)
        record = {"status": "failed", "error": f"unreadable {SUMMARY_FILE}: {' '.join(str(exc).split())}"}
    if not isinstance(record, dict):
        record = {"status": "failed", "error": f"unreadable {SUMMARY_FILE}: not a JSON object"}
    if record.get("status") == "running":  # written at start: still running, or killed before it could finish
        status, why = job_status(job_dir, record)
        if status == "interrupted":
            record = {**record, "status": "interrupted", "error": record.get("error") or f"the job stopped before finishing ({why})"}
        else:
            record = {**record, "status": "failed", "error": f"the job had not finished when the sweep ended ({why})"}
    error = record.get("error", "")
    if launcher_said and record.get("status") != "ok":
        error = f"{error}; {launcher_said}" if error else launcher_said
    num = str(record.get("job", job_dir.name.split("_")[0]))  # a job that wrote nothing: its directory's number
    curve = _val_curve(job_dir / "metrics.jsonl")
    return {
        "job": int(num) if num.isdigit() else num,
        "overrides": " ".join(overrides),
        "model": record.get("model", ""),
        "status": record.get("status", "failed"),
        "metrics": record.get("metrics", {}),
        "error": error,
        "dir": str(job_dir.relative_to(sweep_dir)),
        "curve": curve,
    }


def _job_number(job_dir: Path) -> int | None:
    """The job a directory holds: its summary's number, else the one its name starts with."""
    try:
        record = read_json(job_dir / SUMMARY_FILE)
    except (OSError, ValueError):
        record = None
    num = record.get("job") if isinstance(record, dict) else None
    head = job_dir.name.split("_")[0]
    return num if isinstance(num, int) else int(head) if head.isdigit() else None


def _missing(job: dict[str, Any], launcher_said: str) -> dict[str, Any]:
    """A launched job that left no directory: it never started (or, in a search, a candidate rejected before it could),
    or the launcher saw it die before it wrote its first record (failed)."""
    model = next((o.partition("=")[2] for o in job["overrides"] if o.partition("=")[0].lstrip("+~") == "model"), "")
    if job.get("rejected"):
        return {"job": job["num"], "overrides": " ".join(job["overrides"]), "model": model, "status": "rejected",
                "metrics": dict(job.get("cost") or {}), "error": job["rejected"], "dir": "", "curve": []}
    return {"job": job["num"], "overrides": " ".join(job["overrides"]), "model": model,
            "status": "failed" if job.get("died") else "missing", "metrics": {},
            "error": launcher_said or "the job never started", "dir": "", "curve": []}


def _with_trial(row: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """A search's row: its trial number, whether it is the baseline, and how a rejected candidate was refused.

    Its status is the study's: ``interrupted`` when a stop marked its trial so (the ledger's
    ``interrupted``), whatever its directory holds; a job that died while the search went on was
    told to the study as failed, and is a failed row.
    """
    if "trial" in job:
        row.update(trial=job["trial"], baseline=bool(job.get("baseline")), rejected_as=job.get("rejected_as", ""))
        if job.get("interrupted"):
            row.update(status="interrupted", error=job["interrupted"])
        elif row["status"] == "interrupted":
            row["status"] = "failed"
    return row


def is_failure(row: dict[str, Any]) -> bool:
    """A row the app exits 1 for: a job that failed or never ran. A search's interrupted trial is not counted
    (the search runs another in its place), nor is a candidate the search pruned or rejected."""
    return row["status"] not in NOT_FAILED and not (row["status"] == "interrupted" and "trial" in row)


def _val_curve(path: Path) -> list[tuple[int, float]]:
    """(epoch, validation score) of a training job, from its metrics.jsonl: mIoU for a segmentation
    model, accuracy for a classifier; [] for other tasks."""
    records = read_metrics(path)  # none, or not the job's own (a FIFO, a huge file): no curve
    key = next((k for k in ("val_miou", "val_box_ap") if any(k in r for r in records)), "val_acc")
    return [(r["epoch"], r[key]) for r in records if r.get(key) is not None and "epoch" in r]


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job of the sweep in ``sweep_dir``, ordered by job number.

    With the sweep's ledger: exactly its jobs, each read from its directory when it has one
    (a directory's number is its job's), else ``missing``. Without one (a sweep of an older
    version, or a directory gathered by hand): every job directory found.
    """
    ledger = read_ledger(sweep_dir)
    dirs = job_dirs(sweep_dir)
    if ledger is None:
        rows = [_read_job(d, sweep_dir) for d in dirs]
    else:
        said = ledger.get("launcher_errors", {})
        by_num = {num: d for d in dirs if (num := _job_number(d)) is not None}
        rows = [_with_trial(_read_job(by_num[j["num"]], sweep_dir, said.get(str(j["num"]), "")) if j["num"] in by_num
                            else _missing(j, said.get(str(j["num"]), "")), j) for j in ledger["jobs"]]
    return sorted(rows, key=lambda r: (r["job"] if isinstance(r["job"], int) else 1 << 30, r["dir"]))


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for row in rows:
        names += [k for k in row["metrics"] if k not in names]
    return names


def _search_columns(rows: list[dict[str, Any]]) -> list[str]:
    return ["trial", "place"] if any("trial" in r for r in rows) else []


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    metrics = metric_names(rows)
    search = _search_columns(rows)
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([*FIXED_COLUMNS, *search, *metrics, "error", "dir"])
    for r in rows:
        writer.writerow([*(r[c] for c in FIXED_COLUMNS), *(r.get(c, "") for c in search), *(r["metrics"].get(m, "") for m in metrics),
                         r["error"], r["dir"]])
    atomic_write(path, lambda tmp: tmp.write_text(out.getvalue(), encoding="utf-8", newline=""))


def common_overrides(rows: list[dict[str, Any]]) -> list[str]:
    """Overrides every job shares (``+experiment=...``): said once, not in every row."""
    if len(rows) < 2:
        return []
    shared = set(rows[0]["overrides"].split())
    for r in rows[1:]:
        shared &= set(r["overrides"].split())
    return [o for o in rows[0]["overrides"].split() if o in shared]


def _varying(row: dict[str, Any], common: list[str]) -> str:
    return " ".join(o for o in row["overrides"].split() if o not in common)


def write_markdown(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    metrics = metric_names(rows)
    common = common_overrides(rows)
    search = _search_columns(rows)
    table = Table(
        title=title,
        columns=[*FIXED_COLUMNS, *search, *metrics, "error"],
        rows=[[str(r["job"]), f"`{_varying(r, common)}`" if _varying(r, common) else "", r["model"], r["status"],
               *(str(r.get(c, "")) + (" (baseline)" if c == "trial" and r.get("baseline") else "") for c in search),
               *(cell(r["metrics"].get(m)) for m in metrics), r["error"].replace("\n", " ")] for r in rows],
        right=frozenset(range(len(FIXED_COLUMNS) + len(search), len(FIXED_COLUMNS) + len(search) + len(metrics))),
        notes=[("every job", f"`{' '.join(common)}`")] if common else [],
    )
    write_text_atomic(path, to_markdown(table) + "\n")


def write_report(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = collect(sweep_dir)
    missing = sum(r["status"] == "missing" for r in rows)
    interrupted = sum(r["status"] == "interrupted" for r in rows)
    missing_text = (f", {interrupted} interrupted" if interrupted else "") + (f", {missing} missing" if missing else "")
    search = (read_ledger(sweep_dir) or {}).get("search")
    if search:
        from ..search import front_report

        objectives = front_report.write(rows, search, sweep_dir, common_overrides(rows))
        n = front_report.counts(rows)
        title = (f"Search {sweep_dir}: {len(rows)} candidates, {n['front']} on the Pareto front, {n['dominated']} dominated, "
                 f"{n['pruned']} pruned, {n['rejected']} rejected, {n['failed']} failed" + missing_text)
    else:
        title = f"Sweep {sweep_dir}: {len(rows)} jobs, {sum(r['status'] == 'failed' for r in rows)} failed" + missing_text
    write_csv(rows, sweep_dir / "sweep.csv")
    write_markdown(rows, sweep_dir / "sweep.md", title)
    if search:
        from ..report.pareto_plot import write_pareto_plot  # only a search's end draws it

        write_pareto_plot(rows, objectives, sweep_dir / "sweep.png", f"Search {sweep_dir.name}")
    else:
        from ..report.sweep_plot import write_plot  # only a sweep's end draws: --help and completion never import it

        write_plot(rows, sweep_dir / "sweep.png", f"Sweep {sweep_dir.name}")
    return rows


class SweepReport(Callback):
    """Hydra callback (conf/hydra/default.yaml) writing the sweep's table, CSV and plot."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _failed
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = write_report(sweep_dir)
        _failed = sum(map(is_failure, rows))
        also = ", pareto.md, pareto.csv" if (sweep_dir / "pareto.md").is_file() else ""
        if not stopping.stopped():  # a stopped sweep's one line (the app prints it) names sweep.md itself
            print(f"lucid-arch: {outcome_line(rows)}: {sweep_dir / 'sweep.md'}, sweep.csv, sweep.png{also}")


def outcome_line(rows: list[dict[str, Any]]) -> str:
    """'sweep of 4 jobs (1 failed or missing)', or for a search what its candidates became, rejected ones apart."""
    failed = sum(map(is_failure, rows))
    if not any("trial" in r for r in rows):
        return f"sweep of {len(rows)} jobs ({failed} failed or missing)"
    rejected = sum(r["status"] == "rejected" for r in rows)
    interrupted = sum(r["status"] == "interrupted" for r in rows)
    ran = len(rows) - rejected
    if not ran:
        return (f"search of {len(rows)} candidates, every one rejected before running: no job ran (see their reasons in "
                "sweep.md; widen the space or the budgets)")
    return (f"search of {len(rows)} candidates: {rejected} rejected before running, {ran} jobs ran ({failed} failed or missing"
            + (f", {interrupted} interrupted by a stop, not counted" if interrupted else "") + ")")
