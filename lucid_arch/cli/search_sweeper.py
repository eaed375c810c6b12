"""``hydra/sweeper=optuna``: an architecture search with Optuna, on the app's guarantees.

Hydra's own Optuna sweeper (hydra-optuna-sweeper 1.2.0, its last release) requires
optuna>=2.10,<3; optuna 2.10's SQLite storage fails under SQLAlchemy 2 and its pins cannot
meet current alembic, so it cannot keep a study on disk here (docs/search.md has the details).
This sweeper takes the same keys (``sampler``, ``direction``, ``storage``, ``study_name``,
``n_trials``, ``n_jobs``, ``params`` in Hydra's choice/range/interval/tag syntax) on current
Optuna, and adds what a search over architectures needs:

1. every candidate is composed and judged before anything is built (lucid_arch.search.candidate):
   an invalid model or one over ``search.max_gflops`` / ``search.max_params`` is told to the
   study as rejected (FAIL / PRUNED, its reason a user attribute) and is a ``rejected`` row of
   the report, without a job; rejected candidates do not count toward ``n_trials``;
2. trials run in batches of ``n_jobs`` through whichever launcher is configured (basic, joblib,
   submitit on SLURM), each job told its trial (lucid_arch.search.trial) so that its training
   can be pruned per epoch and its latency measured;
3. objectives are metrics of the jobs' summary.json (``search.objectives``), read back here;
4. the study lives in the sweep directory (SQLite, or a journal file) or on a database server
   (lucid_arch.search.storage), recorded in the sweep's ledger, so the same command continues a
   stopped search; it names its objectives, for Optuna's CLI and optuna-dashboard;
5. Ctrl-C or SIGTERM settles the trials in flight (interrupted: FAIL in the study, marked in the
   ledger, not counted) and still writes the report; the app prints one line (lucid_arch.cli.stopping).
   A search killed outright has its trials settled the same way when run again;
6. the sweep report (lucid_arch.cli.sweep_report) adds the Pareto front.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from ..config import ConfigError, Problem
from ..safe_io import atomic_write
from ..search import storage as study_storage
from ..search import study as studies
from ..search.candidate import OVER_BUDGET, Verdict, judge
from ..search.objectives import Objectives, objectives_of
from ..search.settings import settings_of
from ..search.space import SearchSpace, contains, key_of, parse_space
from ..search.trial import ENV, env_value
from . import stopping, sweep_ledger
from .jobs import EXIT_USAGE, SUMMARY_FILE, JobFailed

MISSING_EXTRA = "hydra/sweeper=optuna needs Optuna, which is not installed: pip install 'lucid-arch[search]'."


def _say(text: str) -> None:
    print(f"lucid-arch: {text}", file=sys.stderr, flush=True)


def _one_line(value: Any, limit: int = 400) -> str:
    text = " ".join(str(value).split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _in_sweep_dir(spec: str) -> str:
    """``sqlite`` or ``journal`` for a study file the sweep directory holds under its default name, else ''."""
    file = study_storage.journal_file(spec) or studies.sqlite_file(spec)
    kind = "journal" if study_storage.journal_file(spec) else "sqlite"
    return kind if file is not None and file.name == ("study.journal" if kind == "journal" else "study.db") else ""


class OptunaSweeper(Sweeper):
    def __init__(self, sampler: Any = None, direction: Any = None, storage: Optional[str] = None, study_name: str = "search",
                 n_trials: int = 20, n_jobs: int = 2, params: Any = None, custom_search_space: Optional[str] = None,
                 pruner: Any = None, max_rejected: int = 50, search_space: Any = None) -> None:
        if studies.optuna_module() is None:
            raise JobFailed(MISSING_EXTRA, EXIT_USAGE)
        problems = [Problem(f"hydra.sweeper.{key}", f"hydra.sweeper.{key} = {value!r}: give a positive integer.")
                    for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs), ("max_rejected", max_rejected))
                    if isinstance(value, bool) or not isinstance(value, int) or value < 1]
        if custom_search_space is not None or search_space is not None:
            key = "custom_search_space" if custom_search_space is not None else "search_space"
            problems.append(Problem(f"hydra.sweeper.{key}", f"hydra.sweeper.{key} is not supported by lucid-arch's Optuna "
                                    f"sweeper; give the space in hydra.sweeper.params (choice, range, interval, tag(log, ...))."))
        if problems:
            raise ConfigError(problems)
        self.sampler, self.direction, self.storage, self.study_name = sampler, _plain(direction), storage, str(study_name)
        self.n_trials, self.n_jobs, self.params, self.pruner, self.max_rejected = n_trials, n_jobs, _plain(params), pruner, max_rejected
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None
        self.hydra_context: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        from .sweeper import keep_every_outcome

        self.config, self.hydra_context = config, hydra_context
        launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = keep_every_outcome(launcher)

    # --- the search ---------------------------------------------------------------------------

    def sweep(self, arguments: list[str]) -> Any:
        import optuna

        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        parser = OverridesParser.create(config_loader=loader)
        self.sweep_dir = Path(str(self.config.hydra.sweep.dir))
        space = parse_space(self.params, arguments, parser, options=self._group_options)
        settings = settings_of(self.config)
        objectives = objectives_of(settings.objectives, self.direction)
        storage_url = study_storage.resolve(self.storage, self.sweep_dir)  # sqlite (default), journal or a database URL
        self._check_same_storage(storage_url)
        identity = {"space": space.describe(), "fixed": list(space.fixed), "objectives": list(objectives.names),
                    "directions": list(objectives.directions)}
        pruner = _plain(self.pruner)
        studies.check_study_file(storage_url)  # a damaged study is refused before the ledger records a run of it
        self.ledger = sweep_ledger.open_search_ledger(self.sweep_dir, {
            "identity": identity, "storage": storage_url, "study_name": self.study_name, "pruner": pruner,
            "n_trials": self.n_trials, "sampler": _plain(self.sampler), "max_gflops": settings.max_gflops,
            "max_params": settings.max_params})
        atomic_write(self.sweep_dir / "multirun.yaml", lambda tmp: OmegaConf.save(self.config, tmp))

        import hydra.utils

        storage = studies.open_storage(storage_url)
        sampler = hydra.utils.instantiate(self.sampler) if self.sampler else None
        with studies.study_errors(storage_url):
            study = optuna.create_study(storage=storage, study_name=self.study_name, directions=list(objectives.directions),
                                        sampler=sampler, load_if_exists=True)
        if [d.name.lower() for d in study.directions] != list(objectives.directions):
            raise ConfigError([Problem("hydra.sweeper.study_name", (
                f"the study {self.study_name!r} in {study_storage.shown(storage_url)} optimises {len(study.directions)} objective(s) "
                f"in other directions than {objectives.describe()}; give another hydra.sweeper.study_name or hydra.sweeper.storage."))])
        if study.metric_names != list(objectives.names):  # Optuna's CLI and dashboard then name each objective
            import warnings

            with studies.study_errors(storage_url), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # stable in use since Optuna 3.2
                study.set_metric_names(list(objectives.names))
        if pruner:
            optuna.create_study(storage=storage, study_name=self.study_name + studies.CURVES, direction="maximize",
                                load_if_exists=True)
        self._resume(study, objectives)
        if settings.baseline and not study.trials:
            self._enqueue_baseline(study, space, parser)

        _say(f"search: {objectives.describe()} over {', '.join(space.describe())}; "
             f"{studies.counted(study.trials)} of {self.n_trials} trials already ran; study {self.study_name!r} in "
             f"{study_storage.shown(storage_url)}")
        seen = {tuple(t.user_attrs[studies.OVERRIDES]): t for t in study.trials
                if studies.OVERRIDES in t.user_attrs and t.state.is_finished() and studies.outcome(t) not in ("interrupted", "repeat")}
        returns: list[Any] = []
        try:
            self._search(study, space, settings, objectives, seen, returns)
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: the study and the ledger settled, the report still written
            self._stop(study, objectives, stop)
        self._record_study(study)
        return returns

    def _search(self, study: Any, space: SearchSpace, settings: Any, objectives: Objectives, seen: dict[Any, Any],
                returns: list[Any]) -> None:
        """Batches of candidates until n_trials ran, or max_rejected proposals in a row could not run."""
        loader = self.hydra_context.config_loader
        idle, explore = 0, False
        while studies.counted(study.get_trials(deepcopy=False)) < self.n_trials:
            want = min(self.n_jobs, self.n_trials - studies.counted(study.get_trials(deepcopy=False)))
            batch: list[tuple[Any, list[str], Verdict]] = []
            while len(batch) < want and idle < self.max_rejected:
                trial = self._ask(study, space, explore)
                overrides = space.overrides(trial.params)
                key = key_of(overrides)
                trial.set_user_attr(studies.OVERRIDES, list(key))
                if key in seen:
                    self._answer_repeat(study, trial, seen[key])
                    idle, explore = idle + 1, True  # a sampler that returns to a candidate it has: ask a random one next
                    continue
                verdict = judge(lambda o: loader.load_sweep_config(self.config, list(o)), overrides, settings, self._explain)
                if verdict.reason:
                    self._reject(study, trial, overrides, verdict)
                    seen[key] = study.trials[trial.number]
                    idle += 1
                    continue
                idle, explore = 0, False
                seen[key] = trial
                batch.append((trial, overrides, verdict))
            if not batch:
                _say(f"search: stopped after {self.max_rejected} proposals in a row were rejected or repeated earlier trials "
                     f"(hydra.sweeper.max_rejected): the space is mostly invalid, over budget, or used up.")
                break
            returns.append(self._run_batch(study, batch, objectives))
            for trial, _, _ in batch:
                seen[key_of(study.trials[trial.number].user_attrs[studies.OVERRIDES])] = study.trials[trial.number]
        trials = study.get_trials(deepcopy=False)
        ran = {o: sum(studies.outcome(t) == o for t in trials) for o in (*studies.COUNTED, "rejected", "repeat", "interrupted")}
        _say(f"search: {studies.counted(trials)} trials ran ({ran['complete']} complete, {ran['pruned']} pruned, "
             f"{ran['failed']} failed); {ran['rejected']} candidates rejected before running, {ran['repeat']} repeated "
             f"proposals skipped" + (f", {ran['interrupted']} interrupted by a stop" if ran["interrupted"] else "")
             + f"; Optuna counts all {len(trials)} in the study")

    # --- steps ----------------------------------------------------------------------------------

    def _group_options(self, group: str) -> list[str]:
        from hydra.core.object_type import ObjectType

        return [o for o in self.hydra_context.config_loader.get_group_options(group, results_filter=ObjectType.CONFIG)
                if not o.startswith("_")]

    @staticmethod
    def _explain(error: BaseException, overrides: Sequence[str]) -> str:
        from ..config.hydra_session import chosen, explain_error

        return str(explain_error(error, chosen("model", list(overrides)), overrides=list(overrides)))

    def _settle(self, study: Any, objectives: Objectives, why: str) -> list[int]:
        """Trials left RUNNING (in flight at a stop, or by a search that was killed): those whose job finished anyway
        (it ended just before the stop, or a cluster job outlived the search) are told their result; the rest are
        interrupted: FAIL with lucid_outcome=interrupted in the study, not counted, and ``interrupted`` in the ledger,
        so that their rows say the same. Returns the numbers of the trials interrupted."""
        from optuna.trial import Trial, TrialState

        nums = {j.get("trial"): j["num"] for j in self.ledger["jobs"]}
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number in nums and self._summary(nums[t.number]).get("status") in ("ok", "pruned", "failed"):
                self._tell_result(study, Trial(study, t._trial_id), nums[t.number], None, objectives)
        left = studies.interrupt_running(study, why)
        if self.ledger["search"].get("pruner"):
            studies.fail_curves(study)
        marks = {nums[t.number]: why for t in left if t.number in nums}
        if marks:
            sweep_ledger.mark_interrupted(self.sweep_dir, self.ledger, marks)
        return [t.number for t in left]

    def _resume(self, study: Any, objectives: Objectives) -> None:
        """Trials a search killed outright (SIGKILL, a lost node) left running, settled before it continues."""
        why = ("the search was stopped while this trial ran; the search run again into this directory marked it interrupted "
               "and ran another trial in its place")
        left = self._settle(study, objectives, why)
        if left:
            _say(f"search: {len(left)} trial(s) were running when the search stopped: marked interrupted and not counted")

    def _stop(self, study: Any, objectives: Objectives, stop: KeyboardInterrupt) -> None:
        """Ctrl-C or SIGTERM during the search: the trials in flight settled, one line for the app to print at the end."""
        name = stopping.name_of(stopping.signal_of(stop))
        left = self._settle(study, objectives, (
            f"the search was stopped by {name} while this trial ran; not counted: the same command continues the search, "
            "with another trial in its place"))
        done = studies.counted(study.get_trials(deepcopy=False))
        stopping.record_stop(stop, (
            f"search stopped by {name}: {len(left)} trial(s) in flight marked interrupted, {done} of {self.n_trials} trials "
            f"done; the same command continues it (the rows so far: {self.sweep_dir / 'sweep.md'})."))

    def _record_study(self, study: Any) -> None:
        """Optuna's own count of the study's trials, by outcome, for the report to square with the rows (pareto.md)."""
        trials = study.get_trials(deepcopy=False)
        outcomes: dict[str, int] = {}
        for t in trials:
            key = studies.outcome(t) or t.state.name.lower()
            outcomes[key] = outcomes.get(key, 0) + 1
        sweep_ledger.record_study(self.sweep_dir, self.ledger, {"name": self.study_name, "trials": len(trials), "outcomes": outcomes})

    def _check_same_storage(self, storage_url: str) -> None:
        """A search continues in its own study only: one whose ledger names another storage is refused (its trials
        are numbered in that study). A sweep directory moved elsewhere keeps its study file: that is the same."""
        old = sweep_ledger.read_ledger(self.sweep_dir) or {}
        was = old.get("search").get("storage") if isinstance(old.get("search"), dict) else None
        if not isinstance(was, str) or was == storage_url or not old.get("jobs"):
            return
        if _in_sweep_dir(was) and _in_sweep_dir(was) == _in_sweep_dir(storage_url):
            return
        raise ConfigError([Problem("hydra.sweeper.storage", (
            f"hydra.sweep.dir = {str(self.sweep_dir)!r} holds a search whose study is in {study_storage.shown(was)}, but "
            f"hydra.sweeper.storage now gives {study_storage.shown(storage_url)}; a search continues only in its own study, "
            "where its trials are numbered. Give the same hydra.sweeper.storage to continue it, or a new hydra.sweep.dir."))])

    def _enqueue_baseline(self, study: Any, space: SearchSpace, parser: Any) -> None:
        """The base config (the command's fixed overrides, no search value) as the first trial."""
        loader = self.hydra_context.config_loader
        base = loader.load_sweep_config(self.config, list(space.fixed))
        params, problems = {}, []
        for dim in space.dims:
            value = base.hydra.runtime.choices.get(dim.name) if dim.name in base.hydra.runtime.choices else \
                _plain(OmegaConf.select(base, dim.name))
            found = contains(dim, value, lambda text: _plain(parser.parse_override(f"x={text}").value()))
            if found is None:
                problems.append(Problem("search.baseline", f"search.baseline = true, but the base config's {dim.name} = "
                                        f"{value!r} is not in its search space {dim.describe()}; add it there, or set "
                                        f"search.baseline=false."))
            params[dim.name] = found
        if problems:
            raise ConfigError(problems)
        study.enqueue_trial(params, user_attrs={studies.BASELINE: True})

    def _ask(self, study: Any, space: SearchSpace, explore: bool) -> Any:
        """The sampler's next candidate; after a repeat, a random one (seeded by the trial count), so the search moves on."""
        if not explore:
            return study.ask(space.distributions())
        import optuna

        sampler = study.sampler
        study.sampler = optuna.samplers.RandomSampler(seed=len(study.get_trials(deepcopy=False)))
        try:
            return study.ask(space.distributions())
        finally:
            study.sampler = sampler

    def _answer_repeat(self, study: Any, trial: Any, earlier: Any) -> None:
        """A candidate already tried: not run again (its trial's result stands), told FAIL so that samplers skip it."""
        from optuna.trial import TrialState

        trial.set_user_attr(studies.OUTCOME, "repeat")
        trial.set_user_attr(studies.REASON, f"the same overrides as trial {earlier.number}, not run again")
        study.tell(trial, state=TrialState.FAIL)

    def _reject(self, study: Any, trial: Any, overrides: list[str], verdict: Verdict) -> None:
        from optuna.trial import TrialState

        num = sweep_ledger.next_num(self.ledger)
        sweep_ledger.add_jobs(self.sweep_dir, self.ledger, [{
            "num": num, "overrides": overrides, "trial": trial.number, "rejected": verdict.reason, "rejected_as": verdict.kind,
            "cost": verdict.cost, **({"baseline": True} if trial.user_attrs.get(studies.BASELINE) else {})}])
        trial.set_user_attr(studies.OUTCOME, "rejected")
        trial.set_user_attr(studies.REASON, verdict.reason)
        study.tell(trial, state=TrialState.PRUNED if verdict.kind == OVER_BUDGET else TrialState.FAIL)
        _say(f"search: trial {trial.number} rejected before running ({verdict.kind}): {verdict.reason}")

    def _run_batch(self, study: Any, batch: list[tuple[Any, list[str], Verdict]], objectives: Objectives) -> list[Any]:
        first = sweep_ledger.next_num(self.ledger)
        nums = list(range(first, first + len(batch)))
        ledger_path = self.sweep_dir / sweep_ledger.LEDGER
        sweep_ledger.add_jobs(self.sweep_dir, self.ledger, [
            {"num": num, "overrides": overrides, "trial": trial.number, "cost": verdict.cost,
             **({"baseline": True} if trial.user_attrs.get(studies.BASELINE) else {})}
            for num, (trial, overrides, verdict) in zip(nums, batch)])
        jobs = [[*overrides, f"++hydra.job.env_set.{ENV}='{env_value(trial.number, ledger_path)}'"]
                for trial, overrides, _ in batch]
        for num, (trial, _, _) in zip(nums, batch):
            trial.set_user_attr(studies.JOB, num)
        try:
            results = self.launcher.launch(jobs, initial_job_idx=first)
        except Exception as error:  # noqa: BLE001 -- whatever the launcher lost, every trial is told and has a row
            reason = f"the {type(self.launcher).__name__} lost the batch: {type(error).__name__}: {_one_line(error)}"
            _say(reason)
            sweep_ledger.record_launcher_errors(self.sweep_dir, self.ledger, {num: reason for num in nums})
            results = [None] * len(batch)
        died = {num: _one_line(r._return_value) for num, r in zip(nums, results) if r is not None and r.status == JobStatus.FAILED}
        if died:
            sweep_ledger.record_launcher_errors(self.sweep_dir, self.ledger, died, died=True)
        for num, (trial, _, _), result in zip(nums, batch, results):
            self._tell_result(study, trial, num, died.get(num) or (None if result is not None else "the launcher lost it"),
                              objectives)
        return [r for r in results if r is not None]

    def _job_dir(self, num: int) -> Optional[Path]:
        """Job ``num``'s directory (``NUM`` or ``NUM_...``), or None when it has none."""
        return next((d for d in self.sweep_dir.glob(f"{num}*")
                     if d.is_dir() and (d.name == str(num) or d.name.startswith(f"{num}_"))), None)

    def _summary(self, num: int) -> dict[str, Any]:
        """Job ``num``'s summary.json, or {} when it left none (or none that reads)."""
        import json

        found = self._job_dir(num)
        try:
            return json.loads((found / SUMMARY_FILE).read_text()) if found is not None else {}
        except (OSError, ValueError):
            return {}

    def _tell_result(self, study: Any, trial: Any, num: int, launcher_said: Optional[str], objectives: Objectives) -> None:
        from optuna.trial import TrialState

        summary = self._summary(num)
        status, values, state = summary.get("status"), None, TrialState.FAIL
        reason = summary.get("error") or launcher_said or ""
        if status == "ok":
            try:
                values = objectives.values(summary.get("metrics", {}))
                state, outcome = TrialState.COMPLETE, "complete"
            except ValueError as error:
                reason, outcome = str(error), "failed"
        elif status == "pruned":
            state, outcome = TrialState.PRUNED, "pruned"
        else:
            outcome = "failed"
            reason = reason or "the job left no result (no summary.json)"
        trial.set_user_attr(studies.OUTCOME, outcome)
        if reason:
            trial.set_user_attr(studies.REASON, _one_line(reason))
        found = self._job_dir(num)
        if found is not None:  # where its files are, for whoever looks at the study (optuna-dashboard)
            trial.set_user_attr(studies.DIR, str(found.absolute()))
        study.tell(trial, values, state=state)
        shown = ", ".join(f"{n} {v:.4g}" for n, v in zip(objectives.names, values)) if values else _one_line(reason, 200)
        _say(f"search: trial {trial.number} (job {num}) {outcome}: {shown}")
