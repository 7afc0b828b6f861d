"""The user docs describe the product: no words about how the work was done (issues, sessions, reviews, who did
it, the dev box a run had) and no paths outside the repository. README.md, docs/**/*.md and configs/*.py."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Case-insensitive, word-bounded.
PROCESS_WORDS = [
    r"\bissues?\b",  # the project's issue tracker; a library's bug is named by what it does
    r"\bsessions?\b",
    r"\breview(s|ed|er|ers)?\b",
    r"\bthe lead\b",
    r"\bengineers?\b",
    r"\bhelpers?\b",
    r"\breporter'?s?\b",
    r"\b(this|the) machine\b",  # name the CPU model instead
    r"\bfree the machine\b",
    r"\bnot (built|implemented) yet\b",
    r"\.\./shared\b",
    r"(?<![\w.])/work/",
]
# Legitimate uses, as (file or "*" for any, regex of the line).
ALLOWED: list[tuple[str, str]] = [
    ("*", r"\bdepends? on the machine\b"),  # whichever machine runs it, not the one the docs were made on
]
_PATTERN = re.compile("|".join(f"(?:{word})" for word in PROCESS_WORDS), re.IGNORECASE)


def doc_files(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md")), *sorted((root / "configs").glob("*.py"))]


def process_word_hits(paths) -> list[str]:
    """`"file:line: text"` for every line of `paths` with a process word that ALLOWED does not excuse."""
    hits = []
    for path in paths:
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if _PATTERN.search(line) and not any(
                file in ("*", name) and re.search(allowed, line, re.IGNORECASE) for file, allowed in ALLOWED
            ):
                hits.append(f"{name}:{number}: {line.strip()}")
    return hits


def test_docs_have_no_process_words():
    hits = process_word_hits(doc_files())
    assert not hits, "process words in the docs (rewrite as what the product does):\n" + "\n".join(hits)


def test_a_planted_process_word_is_found_with_its_file_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A page\n\nThe encoder exports.\nAs the Reviewer found, see ../shared/notes.md.\n")
    assert process_word_hits([page]) == [f"{page}:4: As the Reviewer found, see ../shared/notes.md."]


def test_words_inside_other_words_and_allowed_uses_are_not_process_words(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("tests/run_helpers.py, reissued, the machinery, previews, /workdir\nTimes depend on the machine.\n")
    assert process_word_hits([page]) == []
