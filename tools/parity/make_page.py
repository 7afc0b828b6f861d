"""Builds docs/parity.md from the parity tools' JSON files (docs/parity/<method>.json).

    python tools/parity/make_page.py            # writes docs/parity.md
    python tools/parity/make_page.py --check    # exit 1 if docs/parity.md is not what the JSON gives

Each method's section is its JSON's rows (written by `tools/parity/<method>.py --json ...`) and,
when present, the hand-written `docs/parity/<method>.notes.md` (the differences found and what was
done about each). Needs only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "docs", "parity")
PAGE = os.path.join(ROOT, "docs", "parity.md")

# Page order, and each method's anchor name (method pages link docs/parity.md#<anchor>).
METHODS = {
    "stl": "STL",
    "gtsa": "GTSA",
    "sie": "SIE",
    "essl": "E-SSL",
    "augself": "AugSelf",
    "ciper": "CIPER",
    "augment": "Augmentations",
}
SECTIONS = ("init", "backbone", "augment", "loss", "gradients", "step", "probe")

INTRO = """# Parity with the authors' code

Each method that has public code is run beside the authors' PyTorch implementation on the **same
weights and the same batch**: the official model is built at a tiny size, its weights are copied
into ours with the same loaders users call (`keras_eqssl.nn.load_resnet_weights`,
`load_vit_weights`, `load_mlp_weights`), both get the same images and the same recorded
augmentation parameters, and the tool compares, in float32 on CPU:

- **backbone**: the encoder's outputs;
- **loss**: every loss term and the total, with the official coefficients;
- **gradients**: the gradient of every weight (one row: the worst weight, named);
- **step**: every weight after one step of the official optimizer (its learning-rate schedule
  value, momentum, weight-decay rule and mask);
- **augment**: each augmentation op's `apply(images, params)` against torchvision (and PIL, for
  the pipelines that use it) given the same parameters (largest pixel difference on [0, 1]
  images), and, per method, the targets built from the recorded parameters;
- **init** and **probe**, where a method has them: how the weights start (distributions, zeroed
  gammas), and the evaluation heads of the paper's protocol.

*relative* is `max |ours - theirs| / max |theirs|` over the whole tensor. Tolerances: 1e-5 on
losses, 1e-4 on gradients, stepped weights and backbone outputs, unless the row says why another
applies. A row marked *explained* exceeds its tolerance for the reason its note gives.

Run one yourself (torch is an optional extra; nothing else in the package needs it):

```bash
pip install -e ".[parity]"
git clone https://github.com/jaemyung-u/stl official/stl
python tools/parity/stl.py --official official/stl --json docs/parity/stl.json
python tools/parity/make_page.py   # rebuilds this page from docs/parity/*.json
```

The CIPER row compares with the re-implementation in `trieschlab/AASSL` (`modules/ciper.py`):
the CIPER authors did not publish code.
"""


def load() -> list[dict]:
    runs = []
    for method in METHODS:
        path = os.path.join(DATA, f"{method}.json")
        if os.path.exists(path):
            with open(path) as f:
                run = json.load(f)
            run["key"] = method
            notes = os.path.join(DATA, f"{method}.notes.md")
            run["notes"] = open(notes).read().strip() if os.path.exists(notes) else ""
            runs.append(run)
    return runs


def _fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def _within(row: dict) -> str:
    if row["max_rel"] <= row["tol"]:
        return "yes"
    return "explained" if row["ok"] else "**no**"


def summary(runs: list[dict]) -> list[str]:
    lines = [
        "## Summary",
        "",
        "Per section: the worst relative difference among the rows within their tolerance, how many",
        "rows those are, and how many rows differ for a reason their note explains (usually our default",
        "beside the option that reproduces the official behaviour); **no** marks a row outside its tolerance",
        "with no explanation.",
        "",
        "| method | official code | " + " | ".join(SECTIONS) + " |",
        "|---|---|" + "---|" * len(SECTIONS),
    ]
    for run in runs:
        cells = []
        for section in SECTIONS:
            rows = [r for r in run["rows"] if r["section"] == section]
            verdicts = [_within(r) for r in rows]
            within = [r["max_rel"] for r, v in zip(rows, verdicts) if v == "yes"]
            parts = [f"{_fmt(max(within))} ({len(within)} row{'s' * (len(within) > 1)})"] if within else []
            parts += [f"{verdicts.count(v)} {v}" for v in ("explained", "**no**") if v in verdicts]
            cells.append(", ".join(parts) or "—")
        name = METHODS[run["key"]]
        repo = f"`{run['repository']}` @ `{run['commit'][:7]}`"
        lines.append(f"| [{name}](#{_anchor(name)}) | {repo} | " + " | ".join(cells) + " |")
    return lines


def _anchor(title: str) -> str:
    return title.lower().replace(" ", "-")


def section(run: dict) -> list[str]:
    lines = [
        f"## {METHODS[run['key']]}",
        "",
        f"Official code: `{run['repository']}` at commit `{run['commit']}`.  ",
        f"Command: `{run['command']}`  ",
        f"Measured on {run['cpu']} with torch {run['torch']} and TensorFlow {run['tensorflow']}.",
        "",
        "| section | quantity | max abs diff | relative | tolerance | within | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in run["rows"]:
        note, name = (r[k].replace("|", "\\|") for k in ("note", "name"))
        lines.append(
            f"| {r['section']} | {name} | {_fmt(r['max_abs'])} | {_fmt(r['max_rel'])} | {_fmt(r['tol'])} | "
            f"{_within(r)} | {note} |"
        )
    if run["notes"]:
        lines += ["", run["notes"]]
    return lines


def render(runs: list[dict]) -> str:
    lines = [INTRO.rstrip(), ""] + summary(runs)
    for run in runs:
        lines += [""] + section(run)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only check that docs/parity.md is up to date")
    args = p.parse_args(argv)
    page = render(load())
    if args.check:
        current = open(PAGE).read() if os.path.exists(PAGE) else ""
        if current != page:
            print("docs/parity.md differs from what docs/parity/*.json give: run tools/parity/make_page.py")
            return 1
        return 0
    with open(PAGE, "w") as f:
        f.write(page)
    print(f"wrote {os.path.relpath(PAGE, ROOT)} ({len(load())} methods)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
