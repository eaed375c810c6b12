"""Where a search's study lives: ``hydra.sweeper.storage`` = null | sqlite | journal | a database URL.

- ``null`` or ``sqlite``: ``SWEEP_DIR/study.db``. One machine: SQLite locks through the local
  filesystem, which NFS and other network filesystems often do not honour.
- ``journal``: ``SWEEP_DIR/study.journal``, Optuna's JournalStorage on a file
  (JournalFileBackend): an append-only log, locked with a symlink, built for a filesystem that
  the nodes of a cluster share, so trials on several nodes write to one study without SQLite.
- a database URL (``postgresql://USER@HOST/DB``, ``mysql+pymysql://...``, ``sqlite:////path``):
  Optuna's RDBStorage on a server, for many nodes or many concurrent workers. A bare
  ``postgresql://`` takes whichever PostgreSQL driver is installed (psycopg 3 first, then
  psycopg2), so it works under SQLAlchemy 2.0 and 2.1, whose defaults differ.

The sweep's ledger keeps the resolved form (an absolute SQLite URL, ``journal:/abs/path``, or
the URL as given), and every job opens the same study from it. Printed, a URL's password is
masked; docs/search.md advises keeping it out of the URL (libpq reads ~/.pgpass and PGPASSWORD).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Optional

from ..config import ConfigError, Problem

KEY = "hydra.sweeper.storage"
SQLITE, JOURNAL = "sqlite", "journal"
JOURNAL_PREFIX = "journal:"  # the ledger's form of a journal file: journal:/abs/path/study.journal
# A bare dialect -> the drivers SQLAlchemy can use for it, in the order tried, and the pip line for the first.
DRIVERS = {"postgresql": (("psycopg", "psycopg"), ("psycopg2", "psycopg2")),
           "mysql": (("pymysql", "pymysql"), ("MySQLdb", "mysqldb"))}
INSTALL = {"postgresql": "pip install 'lucid-arch[postgres]'", "mysql": "pip install pymysql"}


def resolve(setting: Any, sweep_dir: Path) -> str:
    """The study's storage for the setting: an SQLite or database URL, or ``journal:`` and an absolute file path."""
    if setting is None or setting == SQLITE:
        return f"sqlite:///{(Path(sweep_dir) / 'study.db').absolute()}"
    if setting == JOURNAL:
        return JOURNAL_PREFIX + str((Path(sweep_dir) / "study.journal").absolute())
    if isinstance(setting, str) and "://" in setting:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(setting)
        except (ArgumentError, ValueError) as error:
            raise _bad(setting, f"is not a database URL SQLAlchemy reads ({' '.join(str(error).split())})") from None
        return setting
    raise _bad(setting, "is not a storage")


def _bad(setting: Any, why: str) -> ConfigError:
    return ConfigError([Problem(KEY, (
        f"{KEY} = {shown(str(setting)) if isinstance(setting, str) else setting!r} {why}; give sqlite (the default: "
        "SWEEP_DIR/study.db, one machine), journal (SWEEP_DIR/study.journal, for nodes sharing a filesystem) or a "
        "database URL such as postgresql://USER@HOST/DATABASE (many nodes or workers)."))])


def journal_file(spec: str) -> Optional[Path]:
    """The file of a journal storage (``journal:/abs/study.journal``); None for a database URL."""
    return Path(spec[len(JOURNAL_PREFIX):]) if spec.startswith(JOURNAL_PREFIX) and "://" not in spec else None


def shown(spec: str) -> str:
    """The storage as printed and recorded for people: a URL's password masked, a journal as its file."""
    journal = journal_file(spec)
    if journal is not None:
        return f"{journal} (journal)"
    try:
        from sqlalchemy.engine import make_url

        return make_url(spec).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: nothing to mask that it would find either
        return spec


def with_driver(url: str) -> str:
    """``url`` naming the installed driver when it names a bare dialect (``postgresql://``); a ConfigError when none is."""
    scheme, sep, rest = url.partition("://")
    drivers = DRIVERS.get(scheme)
    if not sep or drivers is None:
        return url
    for module, dialect_driver in drivers:
        if importlib.util.find_spec(module) is not None:
            return f"{scheme}+{dialect_driver}://{rest}"
    raise ConfigError([Problem(KEY, (
        f"{KEY} = {shown(url)} needs a {scheme} driver for SQLAlchemy, and none is installed "
        f"({' or '.join(m for m, _ in drivers)}): {INSTALL[scheme]}."))])


def dashboard_command(spec: str) -> str:
    """How to look at the study in optuna-dashboard (pip install 'lucid-arch[dashboard]')."""
    journal = journal_file(spec)
    return f"optuna-dashboard {journal if journal is not None else shown(spec)}"
