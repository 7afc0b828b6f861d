"""The documentation site (mkdocs.yml): every public name has an API entry, every nav page exists, and
`mkdocs build --strict` passes (a broken link or a bad `::: reference` fails it)."""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

import keras_eqssl

ROOT = pathlib.Path(__file__).resolve().parents[1]
API_PAGES = sorted((ROOT / "docs" / "api").glob("*.md"))
REFERENCE = re.compile(r"^::: (keras_eqssl[\w.]*)\s*$", re.MULTILINE)
DOCS_INSTALLED = all(importlib.util.find_spec(m) for m in ("mkdocs", "material", "mkdocstrings_handlers.python"))


def api_references() -> list[str]:
    """Every `::: dotted.path` of the API pages."""
    return [ref for page in API_PAGES for ref in REFERENCE.findall(page.read_text())]


def resolve(path: str):
    """The module or object a dotted path names, as Python imports it."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError:
        module, name = path.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)


def nav_pages(entries) -> list[str]:
    """The Markdown files the nav of mkdocs.yml lists, at any depth."""
    if isinstance(entries, str):
        return [entries]
    if isinstance(entries, dict):
        return [page for value in entries.values() for page in nav_pages(value)]
    return [page for entry in entries for page in nav_pages(entry)]


def has_entry(name: str, refs: list[str]) -> bool:
    """A submodule: a reference to itself. Any other name: a reference to it inside the module the lazy table
    imports it from (or a module below that one: `keras_eqssl.data.photos.skimage_photos`)."""
    if name in keras_eqssl._SUBMODULES:
        return f"keras_eqssl.{name}" in refs
    module = keras_eqssl._WHERE[name]
    return any(ref.startswith(f"{module}.") and ref.endswith(f".{name}") for ref in refs)


def test_every_public_name_has_an_api_entry():
    refs = api_references()  # static: nothing heavy is imported
    missing = [name for name in keras_eqssl.__all__ if not has_entry(name, refs)]
    assert missing == [], f"add `::: <module>.<name>` for each to a page of docs/api/: {missing}"


@pytest.mark.slow  # imports every module of the package (TensorFlow, Keras, scikit-learn)
def test_each_api_reference_imports_and_names_the_public_object():
    unresolved = []
    for ref in api_references():
        try:
            resolve(ref)
        except (ImportError, AttributeError) as error:
            unresolved.append(f"{ref}: {error}")
    assert unresolved == []
    by_name: dict[str, list[str]] = {}
    for ref in api_references():
        by_name.setdefault(ref.rsplit(".", 1)[-1], []).append(ref)
    wrong = [
        name
        for name in keras_eqssl.__all__
        if not any(resolve(ref) is getattr(keras_eqssl, name) for ref in by_name.get(name, []))
    ]
    assert wrong == [], f"no reference of docs/api/ names the object keras_eqssl.<name> is: {wrong}"


def test_every_nav_page_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    assert "api/index.md" in pages and "glossary.md" in pages
    assert [p for p in pages if not (ROOT / config["docs_dir"] / p).is_file()] == []
    assert sorted(f"api/{p.name}" for p in API_PAGES) == sorted(p for p in pages if p.startswith("api/"))


def test_doctests_render_as_code_on_the_api_pages():
    spec = importlib.util.spec_from_file_location("doctest_fences", ROOT / "docs" / "api" / "doctest_fences.py")
    fences = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fences)
    text = "Example:\n>>> f([0, 1])\n[0, 1]\n\nAfter.\n```python\n>>> in_a_fence\n```"
    assert fences.fence_doctests(text) == (
        "Example:\n```pycon\n>>> f([0, 1])\n[0, 1]\n```\n\nAfter.\n```python\n>>> in_a_fence\n```"
    )


@pytest.mark.slow
@pytest.mark.skipif(not DOCS_INSTALLED, reason='the docs extra is not installed: pip install -e ".[docs]"')
def test_mkdocs_build_strict_passes(tmp_path):
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "api" / "methods" / "index.html").is_file()
