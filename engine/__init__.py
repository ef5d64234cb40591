"""regelwerk: a workflow and rules engine for HR software, driven by declarative YAML.

The public names below are imported lazily: ``import regelwerk`` loads no database,
rules or state-machine library, starts no thread, scans no entry point and reads
no file. Pipeline: ``load_bundle`` -> ``compile_bundle`` -> ``Engine``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "SYSTEM",
    "Actor",
    "CompiledBundle",
    "ConflictError",
    "DefinitionError",
    "Diagnostic",
    "Engine",
    "InvalidData",
    "PermissionDenied",
    "RegelwerkError",
    "Registry",
    "TransitionNotAllowed",
    "UnknownDefinition",
    "UnknownInstance",
    "compile_bundle",
    "load_bundle",
    "load_registry",
]

_EXPORTS = {
    "SYSTEM": "regelwerk.actors",
    "Actor": "regelwerk.actors",
    "CompiledBundle": "regelwerk.compiler",
    "compile_bundle": "regelwerk.compiler",
    "load_bundle": "regelwerk.bundle",
    "Diagnostic": "regelwerk.diagnostics",
    "DefinitionError": "regelwerk.diagnostics",
    "Registry": "regelwerk.registry",
    "load_registry": "regelwerk.registry",
    "Engine": "regelwerk.runtime",
    "ConflictError": "regelwerk.errors",
    "InvalidData": "regelwerk.errors",
    "PermissionDenied": "regelwerk.errors",
    "RegelwerkError": "regelwerk.errors",
    "TransitionNotAllowed": "regelwerk.errors",
    "UnknownDefinition": "regelwerk.errors",
    "UnknownInstance": "regelwerk.errors",
}

if TYPE_CHECKING:
    from regelwerk.actors import SYSTEM, Actor
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import CompiledBundle, compile_bundle
    from regelwerk.diagnostics import DefinitionError, Diagnostic
    from regelwerk.errors import (
        ConflictError,
        InvalidData,
        PermissionDenied,
        RegelwerkError,
        TransitionNotAllowed,
        UnknownDefinition,
        UnknownInstance,
    )
    from regelwerk.registry import Registry, load_registry
    from regelwerk.runtime import Engine


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
