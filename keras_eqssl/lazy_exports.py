"""Lazy package attributes: a name is imported from its module on first use (PEP 562).

A package lists where each public name lives and gets a module `__getattr__` that imports it on
first access, so importing the package loads nothing heavy (TensorFlow, for one) until a name that
needs it is used.

Example:
>>> where = {"dumps": "json"}
>>> namespace = {}
>>> __getattr__ = lazy_getattr("mypackage", where, namespace)
>>> __getattr__("dumps")([1])
'[1]'
>>> "dumps" in namespace  # kept: the next access does not come back here
True
>>> __getattr__("loads")
Traceback (most recent call last):
...
AttributeError: module 'mypackage' has no attribute 'loads'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_getattr(
    package: str, where: Mapping[str, str], namespace: dict, submodules: Sequence[str] = ()
) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `name` from module `where[name]` or, for a name in
    `submodules`, the module `package.name`; kept in `namespace` (the package's `globals()`)."""

    def __getattr__(name: str) -> Any:
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
        elif name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    return __getattr__
