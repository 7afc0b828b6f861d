"""A griffe extension for the API pages: `>>>` examples in docstrings render as code.

The package's docstrings put their doctests right under "Example:", not indented as a Google
section, so Markdown would read them as quotes and `[0, 1]` in an output as a link. This wraps
each run of doctest lines (`>>>`, `...` and the output up to a blank line) in a `pycon` fence.

>>> print(fence_doctests("Example:\\n>>> 1 + 1\\n2\\n\\nMore text."))
Example:
```pycon
>>> 1 + 1
2
```
<BLANKLINE>
More text.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """`text` with each block of doctest lines wrapped in a fenced `pycon` code block."""
    out, in_block, indent, in_fence = [], False, "", False
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_block and not stripped:
            out.append(indent + "```")
            in_block = False
        elif not in_block and not in_fence and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out.append(indent + "```pycon")
            in_block = True
        out.append(line)
    if in_block:
        out.append(indent + "```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fences the doctests of every object's docstring before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
