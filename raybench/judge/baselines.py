"""Named baselines: a name that points at a run folder, for ``compare --baseline NAME``.

``raybench baseline save RUN --name NAME`` writes ``<out>/.baselines/NAME.json`` (``<out>`` is the
results root the run lives in unless given). The file holds a *reference* to the run (its folder,
relative to ``<out>`` when it lies inside it, so a results folder can be moved as a whole) and a
copy of the manifest fields that identify it (run id, status, scenario, start and end), so
``baseline list`` works without opening runs and a baseline whose run was deleted is reported by
name. A baseline is never replaced silently: saving over an existing name needs ``force``.

Baseline file format history (``format`` key):

* 1 — first version.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raybench.errors import ResultsError, UsageError
from raybench.results.store import load_manifest, write_json_atomic

#: Folder under the results root that holds baseline files.
BASELINES_DIR = ".baselines"
#: Version of the baseline file format (see the module docstring).
FORMAT = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Manifest keys copied into the baseline file.
_COPIED = ("run_id", "status", "scenario", "started_utc", "ended_utc")


@dataclass(frozen=True)
class Baseline:
    """A saved baseline.

    Attributes:
        name: the baseline's name.
        path: its JSON file.
        run_dir: the run folder it points at (may no longer exist).
        run_id: the run's id when it was saved.
        saved_utc: when it was saved (ISO 8601, UTC).
        manifest: the copied manifest fields (``run_id``, ``status``, ``scenario``, start and end).
    """

    name: str
    path: Path
    run_dir: Path
    run_id: str
    saved_utc: str
    manifest: dict[str, Any]


def check_name(name: str) -> str:
    """Validate a baseline name (1-64 letters, digits, '.', '_', '-', starting with a letter or digit).

    Raises:
        UsageError: the name is not allowed.
    """
    if not _NAME_RE.match(name or ""):
        raise UsageError(
            f"baseline name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def baseline_path(root: Path | str, name: str) -> Path:
    """``<root>/.baselines/<name>.json`` after checking the name."""
    return Path(root) / BASELINES_DIR / f"{check_name(name)}.json"


def save(run_dir: Path | str, name: str, *, root: Path | str | None = None, force: bool = False) -> Baseline:
    """Save run ``run_dir`` as baseline ``name`` under ``root`` (default: the run's parent folder).

    Args:
        run_dir: a finalized run folder (it must have a readable manifest).
        name: the baseline's name.
        root: results root holding ``.baselines``; default ``run_dir``'s parent.
        force: replace an existing baseline of that name.

    Returns:
        The saved :class:`Baseline`.

    Raises:
        ResultsError: ``run_dir`` is not a readable run folder.
        UsageError: bad name, or the baseline exists and ``force`` is False.
    """
    run_dir = Path(run_dir).resolve()
    manifest = load_manifest(run_dir)
    root_dir = Path(root).resolve() if root is not None else run_dir.parent
    path = baseline_path(root_dir, name)
    if path.exists() and not force:
        old = _read(path)
        old_run = (old.get("manifest") or {}).get("run_id", "?")
        raise UsageError(f"baseline {name!r} already exists (run {old_run}); use --force to replace it")
    try:
        reference = str(run_dir.relative_to(root_dir))
    except ValueError:
        reference = str(run_dir)
    record = {
        "format": FORMAT,
        "name": name,
        "run": reference,
        "saved_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "manifest": {key: manifest.get(key) for key in _COPIED},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)
    return _from_record(path, record)


def _read(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"baseline file {path} is not readable JSON: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ResultsError(f"baseline file {path} has format {record.get('format')!r}; this raybench reads {FORMAT}")
    return record


def _from_record(path: Path, record: dict[str, Any]) -> Baseline:
    run = Path(record["run"])
    run_dir = run if run.is_absolute() else path.parent.parent / run
    manifest = record.get("manifest") or {}
    return Baseline(
        name=str(record["name"]),
        path=path,
        run_dir=run_dir,
        run_id=str(manifest.get("run_id", run.name)),
        saved_utc=str(record.get("saved_utc", "")),
        manifest=manifest,
    )


def load(root: Path | str, name: str) -> Baseline:
    """The baseline ``name`` under ``root``.

    Raises:
        UsageError: bad name, or no such baseline (the message lists the saved ones).
        ResultsError: the baseline file is unreadable.
    """
    path = baseline_path(root, name)
    if not path.exists():
        known = [b.name for b in list_baselines(root)]
        saved = f"saved baselines: {', '.join(known)}" if known else "none is saved there"
        raise UsageError(f"no baseline {name!r} in {Path(root) / BASELINES_DIR} ({saved})")
    return _from_record(path, _read(path))


def resolve(root: Path | str, name: str) -> Path:
    """The run folder baseline ``name`` points at, checked to still be a run folder.

    Raises:
        UsageError: no such baseline.
        ResultsError: its run folder is gone or unreadable.
    """
    baseline = load(root, name)
    if not baseline.run_dir.is_dir():
        raise ResultsError(f"baseline {name!r} points at {baseline.run_dir}, which no longer exists; save another one")
    load_manifest(baseline.run_dir)
    return baseline.run_dir


def list_baselines(root: Path | str) -> list[Baseline]:
    """Every baseline saved under ``root``, sorted by name (unreadable files are skipped)."""
    folder = Path(root) / BASELINES_DIR
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(_from_record(path, _read(path)))
        except (ResultsError, KeyError):
            continue
    return out


def format_baselines(baselines: list[Baseline]) -> list[str]:
    """Lines listing baselines: name, run id, scenario name, saved time, whether the run still exists."""
    if not baselines:
        return ["no baselines saved"]
    rows = [("name", "run", "scenario", "saved", "run folder")]
    for b in baselines:
        scenario = (b.manifest.get("scenario") or {}).get("name", "-")
        rows.append((b.name, b.run_id, str(scenario), b.saved_utc, str(b.run_dir) if b.run_dir.is_dir() else "MISSING"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
