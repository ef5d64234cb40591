"""regelwerk's port around durable-rules: the only module that imports ``durable``.

Every sharp edge of durable-rules 2.0.28 is contained here (see docs/rules.md):

- one ``Host`` per port, with its background timer threads never started (``_run`` is a no-op):
  regelwerk does not use durable timers (they live in memory only; time-based behaviour
  belongs to the workflow runtime's durable timers), so an idle engine uses no CPU;
- rulesets can never be replaced or unregistered: the caller names them by content hash, a
  name already loaded is a no-op, and the number loaded is bounded (``RuleSetLimit``);
- the definition dict is deep-copied before registering (durable deletes ``run`` from it);
- actions are resolved through ``get_action`` and are one-parameter callables (durable treats a
  two-parameter action as asynchronous); they only record which rule fired: regelwerk runs
  the real actions afterwards, outside the host;
- every message is asserted as a fact in one scratch session (``sid``) per ruleset, so every
  matching rule fires (an *event* is consumed by the first rule only) and the 1024-live-sid limit
  is never reached whatever the number of employees; each message carries a sequence number
  so durable's de-duplication of identical facts (``MessageObservedException``) cannot trigger,
  and the session's state is deleted every ``flush_every`` messages so it stays small;
- ``post_batch`` is never used (it runs only the first sid's actions in the caller);
- the C extension has no locks: every call into the host holds the port's lock;
- durable's bare ``Exception('... error code: N')`` becomes :class:`RulesEngineError` with the code.
"""

from __future__ import annotations

import contextlib
import copy
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from engine.errors import RegelwerkError

__all__ = ["DurableRules", "RuleSetLimit", "RulesEngineError", "RulesPort"]

SID = "rw"
_CODE = re.compile(r"error code: (\d+)")


class RulesEngineError(RegelwerkError):
    """durable-rules refused something (its bare error, translated; ``code`` is durable's number)."""

    code = "rules_engine"

    def __init__(self, operation: str, ruleset: str, detail: str) -> None:
        match = _CODE.search(detail)
        self.operation = operation
        self.ruleset = ruleset
        self.error_code = int(match.group(1)) if match else None
        super().__init__(f"durable-rules could not {operation} for {ruleset!r}: {detail}")

    def to_dict(self) -> dict[str, Any]:
        """Include the operation, the ruleset and durable's error code."""
        return {**super().to_dict(), "operation": self.operation, "ruleset": self.ruleset,
                "error_code": self.error_code}


class RuleSetLimit(RegelwerkError):
    """More distinct rule sets than the engine allows (durable-rules can never unload one)."""

    code = "ruleset_limit"

    def __init__(self, limit: int, name: str) -> None:
        self.limit = limit
        self.name = name
        super().__init__(f"cannot load rule set {name!r}: {limit} rule sets are loaded already and durable-rules "
                         "cannot unload any; restart the engine (or raise max_rulesets) after definition changes")


class RulesPort(Protocol):
    """What the rules runtime needs from a rules engine."""

    def load(self, name: str, ruleset: Mapping[str, Any]) -> bool:
        """Register a ruleset under ``name`` unless loaded already; True when newly loaded."""

    def loaded(self) -> frozenset[str]:
        """The names of the loaded rulesets."""

    def match(self, name: str, message: Mapping[str, Any]) -> list[str]:
        """The rule ids that fired for one message, in firing order (empty when none)."""

    def match_many(self, name: str, messages: Sequence[Mapping[str, Any]]) -> list[list[str]]:
        """``match`` for several messages, one after the other."""

    def close(self) -> None:
        """Release the engine's resources."""


def _one_argument(record: Callable[[str], None], rule_id: str) -> Callable[[Any], None]:
    """durable calls actions with the closure ``c``; a 2-argument callable would run asynchronously."""

    def fired(c: Any) -> None:
        record(rule_id)

    return fired


class DurableRules:
    """The durable-rules implementation of :class:`RulesPort` (one Host, no timer threads)."""

    def __init__(self, max_rulesets: int = 1000, flush_every: int = 64) -> None:
        import durable.engine as durable_engine

        self._engine = durable_engine
        self._lock = threading.Lock()
        self._fired: list[str] = []
        self._seq = 0
        self._since_flush: dict[str, int] = {}
        self._loaded: set[str] = set()
        self.max_rulesets = max_rulesets
        self.flush_every = max(1, flush_every)
        self._closed = False
        record = self._fired.append

        class _Host(durable_engine.Host):  # type: ignore[misc]  # durable ships no type hints
            """A Host that starts no timer threads and resolves actions to recorders."""

            def _run(self) -> None:
                """durable starts two self-rescheduling timers here; regelwerk uses no durable timers."""

            def get_action(self, action_name: str) -> Callable[[Any], None]:
                rule_id = action_name.rsplit("/", 1)[-1]
                return _one_argument(record, rule_id)

            def load_ruleset(self, ruleset_name: str) -> Any:
                raise KeyError(ruleset_name)

        self._host = _Host()

    def load(self, name: str, ruleset: Mapping[str, Any]) -> bool:
        """Register ``ruleset`` as ``name`` (a copy: durable mutates what it gets); no-op when loaded."""
        with self._lock:
            self._check_open()
            if name in self._loaded:
                return False
            if len(self._loaded) >= self.max_rulesets:
                raise RuleSetLimit(self.max_rulesets, name)
            try:
                self._host.register_rulesets({name: copy.deepcopy(dict(ruleset))})
            except Exception as exc:
                raise RulesEngineError("create the ruleset", name, str(exc)) from exc
            self._loaded.add(name)
            self._since_flush[name] = 0
            return True

    def loaded(self) -> frozenset[str]:
        """The names of the loaded rulesets."""
        return frozenset(self._loaded)

    def match(self, name: str, message: Mapping[str, Any]) -> list[str]:
        """Assert ``message`` as a fact in the ruleset's scratch session; the rule ids that fired."""
        engine = self._engine
        with self._lock:
            self._check_open()
            if name not in self._loaded:
                raise RulesEngineError("post", name, "ruleset not loaded")
            self._seq += 1
            fact = {**message, "sid": SID, "rw_seq": self._seq}
            fired = self._fired
            fired.clear()
            try:
                self._host.assert_fact(name, fact)
            except engine.MessageNotHandledException:
                pass  # nothing matched: an answer, not an error
            except engine.MessageObservedException:
                pass  # cannot happen (rw_seq makes every fact unique); treated as "nothing new matched"
            except Exception as exc:
                fired.clear()
                raise RulesEngineError("post", name, str(exc)) from exc
            result = list(fired)
            fired.clear()
            count = self._since_flush[name] + 1
            if count >= self.flush_every:
                self._flush(name)
                count = 0
            self._since_flush[name] = count
            return result

    def match_many(self, name: str, messages: Sequence[Mapping[str, Any]]) -> list[list[str]]:
        """One ``match`` per message (never durable's post_batch, whose later sids fire in a background thread)."""
        return [self.match(name, message) for message in messages]

    def session_size(self, name: str) -> int:
        """How many facts the ruleset's scratch session holds now (bounded by ``flush_every``)."""
        with self._lock:
            try:
                return len(self._host.get_facts(name, SID))
            except Exception:  # noqa: BLE001 - durable: "Could not get facts" when the session is empty
                return 0

    def _flush(self, name: str) -> None:
        with contextlib.suppress(Exception):  # deleting a session that is already gone is fine
            self._host.delete_state(name, SID)

    def _check_open(self) -> None:
        if self._closed:
            raise RulesEngineError("use the engine", "-", "the rules port is closed")

    def close(self) -> None:
        """Release every ruleset's memory in the C extension; the port cannot be used afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            native = self._engine.durable_rules_engine  # the C extension durable.engine wraps

            for name in sorted(self._loaded):
                with contextlib.suppress(Exception):  # best effort at shutdown
                    native.delete_ruleset(self._host.get_ruleset(name)._handle)
            self._loaded.clear()

    def __enter__(self) -> DurableRules:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
