"""Where an import's declared columns come from: the customer's bundle, else the shipped standard's."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from regelwerk.imports.columns import ImportSpec

__all__ = ["import_spec", "standard_imports"]


@lru_cache(maxsize=1)
def standard_imports() -> dict[str, ImportSpec]:
    """The shipped ``definitions/standard/imports`` declarations, compiled once per process."""
    from importlib.resources import as_file, files

    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.registry import load_registry

    resource = files("regelwerk.definitions") / "standard" / "imports" / "organisation.yaml"
    with as_file(resource) as path:
        compiled = compile_bundle(load_bundle(path), load_registry())
    return {name: spec for name, spec in compiled.of_kind("Import").items() if isinstance(spec, ImportSpec)}


def import_spec(name: str, compiled: Any = None) -> ImportSpec:
    """The ``Import`` named ``name`` of ``compiled`` (a customer's bundle with its extra attributes), or
    the standard's when the bundle has none (or no bundle is given)."""
    if compiled is not None:
        found = compiled.of_kind("Import").get(name)
        if isinstance(found, ImportSpec):
            return found
    try:
        return standard_imports()[name]
    except KeyError:
        from regelwerk.errors import UnknownDefinition

        raise UnknownDefinition("Import", name, sorted(standard_imports())) from None
