"""The shipped bar files under ``data/`` (what every "on every dataset" test and benchmark iterates).

``data/prediction/`` also holds recorded market answers and resolutions (JSON) next to its probability bars
(CSV): those are not bar files.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data"
BAR_SUFFIXES = (".csv", ".json", ".feather", ".parquet")


def is_bar_file(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() not in BAR_SUFFIXES:
        return False
    return not (path.relative_to(DATA).parts[0] == "prediction" and path.suffix.lower() == ".json")


def bar_files() -> list[Path]:
    """Every shipped bar file, sorted."""
    return sorted(p for p in DATA.rglob("*") if is_bar_file(p))


def non_bar_files() -> list[Path]:
    """Every other shipped file except documentation (provenance) and the recorded prediction answers."""
    return sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix.lower() != ".md" and not is_bar_file(p)
                  and p.relative_to(DATA).parts[0] != "prediction")
