"""logger=mlflow / logger=tensorboard: jobs tracked where people look, read back with the real readers.

A tiny SegFormer is trained once for the module (2 epochs on 32-px colour regions, logger=many),
then read back with MLflow's own client (``MlflowClient``) and TensorBoard's event reader; an
eval of that run, a requeued training and a 2-job sweep log to MLflow too. MLflow creates a
new store's tables in seconds (Alembic's migrations), so one store is made for the module and
copied wherever a test needs a fresh one: each test still starts from an empty store of its own.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from conftest import run_main
from test_segmentation_training import TINY_SEG, colour_regions
from test_training import TINY, _in_tmp  # noqa: F401 -- the autouse fixture: each test in its tmp dir

NAMES = ["background", "red", "green", "blue"]
FAST = ["task.threads=1", "task.progress=none", "task.precision=fp32"]


def client(db: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{db.resolve()}")


def only_run(mlflow, experiment: str):
    found = mlflow.get_experiment_by_name(experiment)
    assert found is not None, [e.name for e in mlflow.search_experiments()]
    runs = mlflow.search_runs([found.experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def artifacts(mlflow, run_id: str, folder: str | None = None) -> set[str]:
    return {a.path for a in mlflow.list_artifacts(run_id, folder)}


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made (copied, it is a fresh store in seconds less)."""
    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    client(db).search_experiments()
    return db


@pytest.fixture(scope="module")
def trained(tmp_path_factory, empty_store) -> Path:
    """The directory the app started in: mlflow.db (the default store) and run/, a segmentation training with logger=many."""
    from lucid_arch.cli import app

    root = tmp_path_factory.mktemp("tracked")
    colours = colour_regions(root / "colours", n_train=16, n_val=6)
    shutil.copy(empty_store, root / "mlflow.db")
    argv = ["task=train", *TINY_SEG, "task.data.dataset=folder", f"task.data.root={colours / 'images'}",
            f"task.data.masks={colours / 'masks'}", "task.data.image_size=32", "task.batch_size=8", "task.epochs=2", *FAST,
            "logger=many", "hydra.run.dir=run"]
    with contextlib.chdir(root), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            app.main(argv)
        except SystemExit as exit:
            assert not exit.code, err.getvalue()[-2000:]
    return root


# --------------------------------------------------------------------------------------- training


def test_a_training_is_an_mlflow_run_with_its_config_epochs_class_ious_and_files(trained):
    mlflow = client(trained / "mlflow.db")  # the default store: mlflow.db where the app was started, as MLflow 3's own
    run = only_run(mlflow, "train")  # a single run's experiment: its task
    summary = json.loads((trained / "run" / "summary.json").read_text())
    assert summary["tracking"]["mlflow"]["run_id"] == run.info.run_id  # summary.json says where the run went
    assert run.info.status == "FINISHED" and run.info.run_name == "segformer_b0"
    params, tags = run.data.params, run.data.tags
    # The flattened model and task configs; the model as trained (its classes and size follow the data).
    assert params["model.num_classes"] == "4" and params["model.img_size"] == "32" and params["model.depths"] == "[1, 1, 1, 1]"
    assert params["task.epochs"] == "2" and params["task.optimizer.lr"] == "0.0005" and params["task.data.dataset"] == "folder"
    assert tags["lucid.task"] == "train" and tags["lucid.status"] == "ok" and tags["lucid.job_dir"] == str(trained / "run")
    # Every key of every epoch record, step = epoch, the last epoch included (the loop asks no hook after it).
    epochs = [json.loads(line) for line in (trained / "run" / "metrics.jsonl").read_text().splitlines()]
    for key in ("train_loss", "train_pixel_acc", "val_loss", "val_pixel_acc", "val_miou", "lr", "images_per_second"):
        history = mlflow.get_metric_history(run.info.run_id, key)
        assert [(m.step, m.value) for m in history] == [(e["epoch"], pytest.approx(e[key])) for e in epochs], key
    for name, iou in zip(NAMES, epochs[-1]["val_iou"]):  # per-class IoU, by class name
        if iou is not None:
            assert run.data.metrics[f"val_iou/{name}"] == pytest.approx(iou)
    assert "val_iou/red" in run.data.metrics
    # The summary's final metrics beside them; a key the epochs log is not logged twice.
    assert run.data.metrics["best_val_miou"] == summary["metrics"]["best_val_miou"] and run.data.metrics["params"] > 0
    assert len(mlflow.get_metric_history(run.info.run_id, "val_miou")) == 2
    assert {"summary.json", "config.yaml", "metrics.jsonl", "inference.json", "lucid_arch.log", "hydra"} <= artifacts(mlflow, run.info.run_id)
    assert artifacts(mlflow, run.info.run_id, "hydra") == {"hydra/config.yaml", "hydra/overrides.yaml", "hydra/hydra.yaml"}


def test_a_training_writes_tensorboard_scalars_per_epoch_and_its_config_as_hparams(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained / "run" / "tensorboard"))  # the default: the job's directory/tensorboard
    events.Reload()
    epochs = [json.loads(line) for line in (trained / "run" / "metrics.jsonl").read_text().splitlines()]
    scalars = set(events.Tags()["scalars"])
    assert {"train_loss", "val_miou", "val_pixel_acc", "lr", "best_val_miou"} <= scalars
    assert {f"val_iou/{n}" for n, v in zip(NAMES, epochs[-1]["val_iou"]) if v is not None} <= scalars
    assert [(s.step, s.value) for s in events.Scalars("val_miou")] == [(e["epoch"], pytest.approx(e["val_miou"])) for e in epochs]
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]  # the HParams tab: config beside final metrics
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["model.num_classes"].number_value == 4 and hparams["model.depths"].string_value == "[1, 1, 1, 1]"


def test_an_eval_of_the_run_logs_its_metrics_and_tables(trained, empty_store, capsys):
    shutil.copy(empty_store, "mlflow.db")
    code, _, err = run_main(["task=eval", f"model.pretrained={trained / 'run'}", *FAST[:2], "logger=mlflow", "hydra.run.dir=ev"], capsys)
    assert code == 0, err
    mlflow = client(Path("mlflow.db"))
    run = only_run(mlflow, "eval")
    metrics = json.loads(Path("ev/summary.json").read_text())["metrics"]
    assert run.data.metrics["mIoU"] == metrics["mIoU"] and run.data.metrics["aAcc"] == metrics["aAcc"]
    assert run.data.metrics["eval img/s"] == metrics["eval img/s"]  # MLflow takes spaces and slashes in a key
    assert run.data.params["model.num_classes"] == "4"  # the run's own model, rebuilt
    per_class = json.loads(Path("ev/summary.json").read_text())["eval"]["per_class"]
    assert run.data.metrics["IoU/red"] == pytest.approx(per_class["red"]["IoU"])  # the per-class table, by class name
    assert {"per_class.csv", "confusion.json", "confusion.png", "summary.json"} <= artifacts(mlflow, run.info.run_id)


def test_a_requeued_training_continues_its_run_and_logs_each_epoch_once(trained, capsys, monkeypatch):
    mlflow = client(trained / "mlflow.db")
    run = only_run(mlflow, "train")
    # As SLURM leaves a preempted job: its run still RUNNING, its process gone (a pid no machine has).
    mlflow.update_run(run.info.run_id, status="RUNNING")
    mlflow.set_tag(run.info.run_id, "lucid.pid", str(2**22 + 17))
    monkeypatch.chdir(trained)
    argv = json.loads((trained / "run" / "summary.json").read_text())["overrides"]
    code, _, err = run_main([*argv, "task.resume=auto", "hydra.run.dir=run"], capsys)
    assert code == 0, err
    again = only_run(mlflow, "train")  # the same run, continued: not a second one
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert [m.step for m in mlflow.get_metric_history(run.info.run_id, "val_miou")] == [1, 2]


# ------------------------------------------------------------------------------------------ sweeps


def test_a_sweep_is_one_experiment_its_jobs_runs_under_the_sweeps_run(empty_store, tmp_path, capsys, monkeypatch):
    store = tmp_path / "elsewhere" / "shared.db"
    store.parent.mkdir()
    shutil.copy(empty_store, store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")  # MLflow's own variable, honoured
    code, _, err = run_main(["-m", "task=train", "model=pvt_v2_b0", *TINY, "model.depths=[1,1,1,1],[1,1,2,1]", "task.epochs=1",
                             "task.data.image_size=32", "task.data.num_train=32", "task.data.num_val=16", "task.batch_size=16", *FAST,
                             "logger=mlflow", "+logger.mlflow.tags.team=vision", "hydra.sweep.dir=sweeps/a"], capsys)
    assert code == 0, err
    assert not Path("mlflow.db").exists()
    mlflow = client(store)
    experiment = mlflow.get_experiment_by_name("sweeps/a")  # the sweep's directory names its experiment
    runs = mlflow.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("lucid.role") == "sweep"]
    jobs = sorted((r for r in runs if r not in parents), key=lambda r: int(r.data.tags["lucid.job"]))
    assert len(parents) == 1 and len(jobs) == 2
    parent = parents[0]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in jobs)  # folded under the sweep in MLflow's UI
    assert [r.data.params["model.depths"] for r in jobs] == ["[1, 1, 1, 1]", "[1, 1, 2, 1]"]
    assert all(r.data.tags["team"] == "vision" and r.info.status == "FINISHED" and "val_acc" in r.data.metrics for r in jobs)
    assert [r.info.run_name for r in jobs] == sorted(p.name for p in Path("sweeps/a").iterdir() if p.is_dir())
    assert {"sweep.md", "sweep.csv", "sweep.png", "multirun.yaml"} <= artifacts(mlflow, parent.info.run_id)
    assert parent.info.status == "FINISHED" and mlflow.get_run(parent.info.run_id).data.metrics["ok"] == 2
    assert experiment.tags["mlflow.note.content"] == Path("sweeps/a/sweep.md").read_text()  # the experiment's description


# ------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("overrides, key, status, message", [
    (["logger.mlflow.experiment=mine"], "logger.mlflow.experiment", 2, "add logger=mlflow"),
    (["logger=mlflow", "logger.backends=[mlflow,wandb]"], "logger.backends", 2, "give any of mlflow, tensorboard"),
    (["logger=mlflow", "logger.mlflow.tracking_uri=sqlite:///a_file/runs.db"], "logger.mlflow.tracking_uri", 2,
     "MLflow could not use it"),  # a store under a file: no directory can be made there, even as root
    (["logger=tensorboard", "logger.tensorboard.log_dir=a_file/tb"], "logger.tensorboard.log_dir", 2, "cannot be written"),
])
def test_bad_logger_settings_are_one_paragraph_errors(overrides, key, status, message, capsys):
    Path("a_file").write_text("not a directory")
    code, _, err = run_main(["model=pvt_v2_b0", *TINY, *overrides], capsys)
    assert code == status and key in err and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_tags_mlflow_and_the_app_set_are_refused():
    from lucid_arch.config import ConfigError
    from lucid_arch.config.logger_schema import LoggerConfig, MlflowConfig, check_logger

    check_logger(LoggerConfig(backends=["mlflow"], mlflow=MlflowConfig(tags={"team": "vision"})))
    with pytest.raises(ConfigError) as error:
        check_logger(LoggerConfig(backends=["mlflow"], mlflow=MlflowConfig(tags={"mlflow.user": "me", "lucid.task": "x"})))
    assert [p.key for p in error.value.problems] == ["logger.mlflow.tags.mlflow.user", "logger.mlflow.tags.lucid.task"]


def test_a_missing_extra_names_the_pip_command(capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    code, _, err = run_main(["model=pvt_v2_b0", *TINY, "logger=tensorboard"], capsys)
    assert code == 1 and "logger=tensorboard needs tensorboard" in err and "pip install 'lucid-arch[tensorboard]'" in err, err
    assert not list(Path.cwd().rglob("events.out.tfevents.*"))


# ------------------------------------------------------------------------------------------ names


def test_keys_every_backend_accepts_and_class_names_kept_apart():
    from lucid_arch.tracking.names import class_keys, epoch_metrics, final_metrics, flatten, metric_key

    assert metric_key("onnxruntime max|diff|") == "onnxruntime max_diff" and metric_key("mIoU (flip)") == "mIoU flip"
    assert metric_key("train img/s") == "train img/s" and metric_key("../x//y") == "x/y"
    assert metric_key("inference b8 inference path (bf16, fp32 below 0.005) img/s") == "inference b8 inference path bf16 fp32 below 0.005 img/s"
    assert class_keys("val_iou", ["cat", "a/b", "a_b", "", "dog"]) == ["val_iou/cat", "val_iou/1_a_b", "val_iou/2_a_b", "val_iou/3__",
                                                                      "val_iou/dog"]
    record = {"epoch": 3, "val_acc": None, "train_loss": 0.5, "val_iou": [0.25, None], "lr": float("nan")}
    assert epoch_metrics(record, ["sky", "road"]) == {"epoch": 3.0, "train_loss": 0.5, "val_iou/sky": 0.25}
    assert final_metrics({"val_acc": 0.9, "params": 10, "note": "x", "best": True}, already={"val_acc"}) == {"params": 10.0}
    assert flatten({"model": {"depths": [2, 2], "neck": {"type": "none"}}, "task": {"tags": {}}}) == {
        "model.depths": [2, 2], "model.neck.type": "none", "task.tags": {}}


def test_the_default_store_and_tensorboard_dir_are_absolute(tmp_path, monkeypatch):
    from lucid_arch.config.logger_schema import MlflowConfig, TensorBoardConfig
    from lucid_arch.tracking.where import Where, experiment_name, run_name, tensorboard_dir, tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    single = Where(job_dir=Path("outputs/d/t"), start_dir=tmp_path, task="eval", model="pvt_v2_b0")
    swept = Where(job_dir=tmp_path / "multirun/d/t/3_x", start_dir=tmp_path, task="train", model="m", sweep_dir=Path("multirun/d/t"))
    assert tracking_uri(MlflowConfig(), tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert (experiment_name(MlflowConfig(), single), run_name(MlflowConfig(), single)) == ("eval", "pvt_v2_b0")
    assert (experiment_name(MlflowConfig(), swept), run_name(MlflowConfig(), swept)) == ("multirun/d/t", "3_x")
    assert tensorboard_dir(TensorBoardConfig(), single) == tmp_path / "outputs/d/t/tensorboard"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team")
    assert experiment_name(MlflowConfig(), swept) == "team" and experiment_name(MlflowConfig(experiment="mine"), swept) == "mine"


def test_the_settings_are_documented_and_the_logger_files_spell_the_schemas_defaults():
    import dataclasses

    import yaml

    from doc_pages import text
    from lucid_arch.config import config_dir
    from lucid_arch.config.logger_schema import LoggerConfig, field_help

    page = text("tracking.md")
    assert [key for key in field_help() if f"| `logger.{key}` |" not in page] == []
    defaults = dataclasses.asdict(LoggerConfig())
    for name, backends in (("none", []), ("mlflow", ["mlflow"]), ("tensorboard", ["tensorboard"]), ("many", ["mlflow", "tensorboard"])):
        spelled = yaml.safe_load((config_dir() / "logger" / f"{name}.yaml").read_text())
        assert spelled.pop("backends") == backends and spelled.pop("defaults") == ["_logger_schema", "_self_"]
        assert spelled == {k: defaults[k] for k in spelled}, name  # each section given is the schema's, whole
        assert set(spelled) == set(backends), name
