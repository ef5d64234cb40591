"""regelwerk: a workflow and rules engine for HR software, driven by declarative YAML.

The public names below are imported lazily: ``import engine`` loads no database,
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
    "SYSTEM": "engine.actors",
    "Actor": "engine.actors",
    "CompiledBundle": "engine.compiler",
    "compile_bundle": "engine.compiler",
    "load_bundle": "engine.bundle",
    "Diagnostic": "engine.diagnostics",
    "DefinitionError": "engine.diagnostics",
    "Registry": "engine.registry",
    "load_registry": "engine.registry",
    "Engine": "engine.runtime",
    "ConflictError": "engine.errors",
    "InvalidData": "engine.errors",
    "PermissionDenied": "engine.errors",
    "RegelwerkError": "engine.errors",
    "TransitionNotAllowed": "engine.errors",
    "UnknownDefinition": "engine.errors",
    "UnknownInstance": "engine.errors",
}

if TYPE_CHECKING:
    from engine.actors import SYSTEM, Actor
    from engine.bundle import load_bundle
    from engine.compiler import CompiledBundle, compile_bundle
    from engine.diagnostics import DefinitionError, Diagnostic
    from engine.errors import (
        ConflictError,
        InvalidData,
        PermissionDenied,
        RegelwerkError,
        TransitionNotAllowed,
        UnknownDefinition,
        UnknownInstance,
    )
    from engine.registry import Registry, load_registry
    from engine.runtime import Engine


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
