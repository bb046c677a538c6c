"""Every citation in the repository can be followed inside the repository.

Comments, docstrings, YAML comments and `src:` strings cite the rules as
"docs/parameterizations.md §2.2" and the measured platform facts as "docs/platform.md §6".
These tests check that (a) no tracked file cites a document a reader of the repository does not
have (an internal spec, "platform notes", a design note outside the tree), (b) every cited
`docs/<name>.md` exists, and (c) every cited section of docs/parameterizations.md and
docs/platform.md is a heading of that page. Each failure lists file:line of every offender.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SELF = "tests/test_docs.py"

# Citation forms that point outside the repository (or to nothing a reader can open).
UNRESOLVABLE = [
    (re.compile(r"\bshared/(?:spec|DESIGN|STYLE|seeds|hooks)\b"), "a file of the internal shared/ tree"),
    (re.compile(r"DESIGN\.md"), "a design note that is not in the repository (cite a README section or docs/)"),
    (re.compile(r"(?<!docs/)\b(?:parameterizations|platform)\.md"), "a spec page outside docs/"),
    (re.compile(r"\bspec\s*§", re.I), "'spec §N' (cite docs/parameterizations.md §N)"),
    (re.compile(r"\bthe spec\b", re.I), "'the spec' (cite docs/parameterizations.md)"),
    (re.compile(r"#\s*spec:", re.I), "a 'spec:' comment (cite docs/parameterizations.md)"),
    (re.compile(r"\bplatform\s+(?:notes|§)", re.I), "'platform notes' (cite docs/platform.md §N)"),
    (re.compile(r"\bseed [123] (?:§|Eqs?\.|Tables?\b|App\.)", re.I), "a paper by its internal nickname ('seed 1')"),
]

DOC_PATH = re.compile(r"\bdocs/[\w./-]*?\.md\b")
# "docs/parameterizations.md §2.1-§2.3", "docs/parameterizations.md §6.1, §6.2, §8.10", "docs/platform.md §1 and §2"
SECTIONED = re.compile(r"\bdocs/(parameterizations|platform)\.md((?:[\s#]*(?:,|-|–|/|and|to)?[\s#]*§\d+(?:\.\d+)*)+)")
SECTION = re.compile(r"§(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{1,6}[ \t]+(\d+(?:\.\d+)*)\.?[ \t]", re.M)


@cache
def tracked_texts() -> tuple[tuple[str, str], ...]:
    """(path, text) of every tracked text file but this one (binary files such as .png are skipped)."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    out = []
    for name in sorted(n for n in names.decode().split("\0") if n and n != SELF):
        path = REPO / name
        if not path.is_file():
            continue  # deleted in the working tree, or a submodule
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            out.append((name, data.decode("utf-8")))
        except UnicodeDecodeError:
            continue
    return tuple(out)


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def report(what: str, offenders: list[str]) -> str:
    return f"{len(offenders)} {what}:\n" + "\n".join(f"  {o}" for o in offenders)


def test_tracked_files_are_listed():
    names = {n for n, _ in tracked_texts()}
    assert "README.md" in names and "docs/parameterizations.md" in names and "docs/platform.md" in names


def test_no_citation_points_outside_the_repository():
    offenders = []
    for name, text in tracked_texts():
        for pattern, why in UNRESOLVABLE:
            for m in pattern.finditer(text):
                line = text.splitlines()[line_of(text, m.start()) - 1].strip()
                offenders.append(f"{name}:{line_of(text, m.start())}: {why}: {line[:140]}")
    assert not offenders, report("citations of documents that are not in the repository", sorted(set(offenders)))


def test_cited_docs_exist():
    offenders = []
    for name, text in tracked_texts():
        for m in DOC_PATH.finditer(text):
            if not (REPO / m.group(0)).is_file():
                offenders.append(f"{name}:{line_of(text, m.start())}: {m.group(0)} does not exist")
    assert not offenders, report("citations of missing docs pages", offenders)


@cache
def headings(page: str) -> frozenset[str]:
    return frozenset(HEADING.findall((REPO / "docs" / f"{page}.md").read_text()))


def test_pages_have_numbered_sections():
    assert {"1", "2", "2.1", "2.2", "2.3", "2.4", "2.5", "3.3", "4", "5", "6.1", "6.4", "8.10", "9"} <= headings("parameterizations")
    assert {"1", "2", "3", "4", "5", "6", "7"} <= headings("platform")


def test_cited_sections_exist():
    offenders, cited = [], 0
    for name, text in tracked_texts():
        for m in SECTIONED.finditer(text):
            page = m.group(1)
            for sec in SECTION.findall(m.group(2)):
                cited += 1
                if sec not in headings(page):
                    offenders.append(f"{name}:{line_of(text, m.start())}: docs/{page}.md has no section {sec} "
                                     f"(its sections: {', '.join(sorted(headings(page), key=lambda s: [int(x) for x in s.split('.')]))})")
    assert not offenders, report("citations of sections that do not exist", offenders)
    assert cited > 0  # the citation pattern still matches what the code writes


def test_section_pattern():
    """The citation forms the code uses are parsed as the sections they name."""
    def secs(s):
        return [SECTION.findall(m.group(2)) for m in SECTIONED.finditer(s)]
    assert secs("(docs/parameterizations.md §2.1-§2.3, muP columns)") == [["2.1", "2.3"]]
    assert secs("docs/parameterizations.md §6.1, §6.2, §8.10)") == [["6.1", "6.2", "8.10"]]
    assert secs("docs/platform.md §1 and §2.") == [["1", "2"]]
    assert secs("(docs/parameterizations.md §2.1,\n# §2.3, SP columns)") == [["2.1", "2.3"]]  # wrapped in a comment
    assert secs("docs/platform.md (no section)") == []
    for bad in ("(spec §2.2)", "Spec §8.5:", "# spec: shared/x", "platform notes §4", "(platform §6 timings)",
                "shared/spec/platform.md §6", "(platform.md §2)", "see shared/DESIGN.md", "the spec's column",
                "seed 1 §C.7", "seed 1 Eqs. 9 and 17"):
        assert any(pattern.search(bad) for pattern, _ in UNRESOLVABLE), bad
    good = ("docs/platform.md §6", "docs/parameterizations.md §2.2", "sweeptools/spec.py", "from sweeptools import spec",
            "OptSpec", "hydra.run.dir=/shared/runs/$JOB", "the spectral paper's Fig. 1", "--seed 1",
            "spec:\n  name: x", "spec = importlib.util.spec_from_file_location(NAME, init)")
    assert not [(s, why) for pattern, why in UNRESOLVABLE for s in good if pattern.search(s)]
