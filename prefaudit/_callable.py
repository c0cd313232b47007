"""Modules that are also their main function.

``prefaudit.audit`` (and gate, clean, report, train, ablate) is both a module and the public function
of the same name. Once anything imports the module, Python binds the package attribute to it,
shadowing the lazy public function; making the module callable keeps ``prefaudit.audit(data)``
working whatever was imported first.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


class CallableModule(types.ModuleType):
    """A module whose call runs its ``__main_function__``."""

    __main_function__: Callable[..., Any]

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return self.__main_function__(*args, **kw)


def callable_module(name: str, function: Callable[..., Any]) -> None:
    """Make module ``name`` callable as ``function``."""
    module = sys.modules[name]
    module.__class__ = CallableModule
    module.__main_function__ = function
