"""Where trial records live: SQLite in the results folder by default, or any Optuna RDB URL."""

from __future__ import annotations

from pathlib import Path

import optuna

from vaesweep.errors import VaesweepError

DEFAULT_DB_NAME = "vaesweep.db"


def default_storage_url(results_dir: Path) -> str:
    return f"sqlite:///{(results_dir / DEFAULT_DB_NAME).resolve()}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Connect (creating tables if needed); any failure becomes one clear line."""
    if "://" not in url:
        raise VaesweepError(
            f"storage {url!r} is not a URL (e.g. sqlite:///path/study.db or "
            "postgresql://user:password@host/dbname)"
        )
    try:
        return optuna.storages.RDBStorage(url)
    except ModuleNotFoundError as err:
        raise VaesweepError(
            f"storage {_redact(url)}: its database driver is missing ({err})"
        ) from None
    except Exception as err:  # SQLAlchemy's URL, connection and schema errors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VaesweepError(f"cannot open storage {_redact(url)}: {reason}") from None


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
