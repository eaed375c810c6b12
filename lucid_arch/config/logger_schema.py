"""The ``logger`` group's schema: where a job's parameters, metrics and files are tracked.

``conf/logger/{none,mlflow,tensorboard,many}.yaml`` are composed onto :class:`LoggerConfig`
(registered as ``logger/_logger_schema`` by :mod:`lucid_arch.config.store`), as the
lightning-hydra-template picks its loggers: ``logger=mlflow`` on the command line. The
defaults below say where each backend writes when nothing is set; :mod:`lucid_arch.tracking`
resolves them for a job. Imports neither torch, Hydra, MLflow nor TensorBoard.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional

from .checks import ConfigError, Problem

BACKENDS = ("mlflow", "tensorboard")
DEFAULT_DB = "mlflow.db"  # MLflow 3's own default store, sqlite:///mlflow.db, in the directory the app started in
MAX_NAME = 500  # MLflow's limit on an experiment's name
MAX_TAG_KEY = 250  # MLflow's limit on a tag's key


def _doc(text: str) -> dict:
    return {"help": " ".join(text.split())}


@dataclass
class MlflowConfig:
    """MLflow: one run per job; a sweep or search is one experiment, its jobs the runs of a parent run."""

    tracking_uri: Optional[str] = field(
        default=None,
        metadata=_doc(
            f"""Where runs are stored: any MLflow tracking URI (sqlite:///PATH, postgresql://...,
            http://HOST:5000, databricks). null: the MLFLOW_TRACKING_URI environment variable when it
            is set, else MLflow 3's default, a SQLite file {DEFAULT_DB} in the directory the app was
            started from (an absolute path, so every job of a sweep, on any node, writes the one file)."""
        ),
    )
    experiment: Optional[str] = field(
        default=None,
        metadata=_doc(
            """The MLflow experiment. null: MLFLOW_EXPERIMENT_NAME when it is set; else, for a sweep
            or search, its directory (multirun/DATE/TIME, as relative to the start directory): one
            experiment per sweep, which a resumed search continues; else the task's name (train,
            eval, ...)."""
        ),
    )
    run_name: Optional[str] = field(
        default=None,
        metadata=_doc(
            """The run's name. null: in a sweep, the job's directory name (its number and
            overrides); else the model's name."""
        ),
    )
    tags: Dict[str, str] = field(
        default_factory=dict,
        metadata=_doc(
            """Tags added to every run ('+logger.mlflow.tags.team=vision'). The app adds its own
            under lucid.*: task, model, job directory, overrides, status."""
        ),
    )
    log_artifacts: bool = field(
        default=True,
        metadata=_doc(
            """Upload the job's report files when it ends: summary.json, config.yaml, metrics.jsonl,
            inference.json, the eval's per_class.csv, confusion.json and confusion.png, benchmark.json,
            Hydra's .hydra/ config and the job's log; at a sweep's end, sweep.md, sweep.csv, sweep.png
            (and a search's pareto.md, pareto.csv) to the sweep's parent run."""
        ),
    )
    log_weights: bool = field(
        default=False,
        metadata=_doc(
            """Also upload the model files the job wrote: a training's model.safetensors and
            model_best.safetensors, an export's .pt2 and .onnx. Off by default: megabytes to
            gigabytes per run, copied into the artifact store."""
        ),
    )


@dataclass
class TensorBoardConfig:
    """TensorBoard event files: one run (a directory of event files) per job."""

    log_dir: Optional[str] = field(
        default=None,
        metadata=_doc(
            """Where the job's event files go. null: the job's directory/tensorboard, so
            `tensorboard --logdir` on a sweep's directory shows its jobs side by side. A path given
            here is shared by every job unless it interpolates, e.g. tb/${hydra:job.num}."""
        ),
    )


@dataclass
class LoggerConfig:
    """``logger=NAME``: where a job's parameters, per-epoch metrics, final metrics and files are tracked."""

    backends: List[str] = field(
        default_factory=list,
        metadata=_doc(
            """The backends the job logs to: any of mlflow, tensorboard. logger=mlflow,
            logger=tensorboard and logger=many (both) set it; logger=none (the default) leaves it empty."""
        ),
    )
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    tensorboard: TensorBoardConfig = field(default_factory=TensorBoardConfig)


def field_help(cls: type = LoggerConfig, prefix: str = "") -> dict[str, str]:
    """Dotted key -> documentation, the backends' sections included (docs/tracking.md's test reads it)."""
    out: dict[str, str] = {}
    for f in fields(cls):
        if f.metadata.get("help"):
            out[prefix + f.name] = f.metadata["help"]
        elif isinstance(f.default_factory, type):  # a backend's section
            out.update(field_help(f.default_factory, f"{prefix}{f.name}."))
    return out


def check_logger(logger: LoggerConfig) -> None:
    """Cross-field rules a type cannot express; raises ConfigError naming every bad key.

    A backend's settings given while that backend is not chosen would be silently ignored, so
    they are an error that says which logger to pick.
    """
    problems: list[Problem] = []
    backends = [str(b) for b in logger.backends]

    def bad(key: str, value: Any, why: str) -> None:
        problems.append(Problem(f"logger.{key}", f"logger.{key} = {value!r}: {why}"))

    if any(b not in BACKENDS for b in backends) or len(set(backends)) != len(backends):
        bad("backends", backends, f"give any of {', '.join(BACKENDS)}, each once (or pick logger=none|mlflow|tensorboard|many).")
    for section, default in (("mlflow", MlflowConfig()), ("tensorboard", TensorBoardConfig())):
        if section in backends:
            continue
        given = {k: v for k, v in asdict(getattr(logger, section)).items() if v != getattr(default, k)}
        for key, value in given.items():
            bad(f"{section}.{key}", value, f"set, but the chosen logger does not log to {section} "
                                           f"(logger.backends = {backends}); add logger={section} (or logger=many for both), or drop it.")
    ml = logger.mlflow
    for key in ("tracking_uri", "experiment", "run_name"):
        value = getattr(ml, key)
        if value is not None and not str(value).strip():
            bad(f"mlflow.{key}", value, "give a non-empty value, or null for the default.")
    if ml.experiment is not None and len(str(ml.experiment)) > MAX_NAME:
        bad("mlflow.experiment", f"{str(ml.experiment)[:40]}...", f"MLflow takes names of at most {MAX_NAME} characters.")
    for key in dict(ml.tags):
        if not str(key).strip() or len(str(key)) > MAX_TAG_KEY:
            bad("mlflow.tags", key, f"a tag's key is 1 to {MAX_TAG_KEY} characters.")
        elif str(key).startswith(("mlflow.", "lucid.")):
            bad(f"mlflow.tags.{key}", dict(ml.tags)[key], "keys under mlflow. and lucid. are set by MLflow and the app; pick another key.")
    if logger.tensorboard.log_dir is not None and not str(logger.tensorboard.log_dir).strip():
        bad("tensorboard.log_dir", logger.tensorboard.log_dir, "give a directory, or null for the job's directory/tensorboard.")
    if problems:
        raise ConfigError(problems)

