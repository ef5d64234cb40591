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
- sessions of facts (join rules) get a sid each, from a bounded pool per ruleset (``max_sessions``, below
  durable's 1024; ``SessionLimit`` beyond it) whose state is deleted when the session closes; their facts
  carry a sequence number too, so identical facts are two facts; the port keeps every live fact and
  retracts them all before deleting a session (and closes every session before the port);
- durable's ``delete_state`` crashes the process (segmentation fault) on a session in which no action
  has fired yet (measured: a lone fact of a join, or only messages that matched nothing): every ruleset
  gets one more rule, ``rw:close``, and the port asserts its sentinel fact just before deleting a state;
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

from regelwerk.errors import RegelwerkError

__all__ = ["DurableRules", "RuleSetLimit", "RulesEngineError", "RulesPort", "SessionLimit"]

SID = "rw"
#: A rule the port adds to every ruleset, fired by a sentinel fact just before ``delete_state``.
CLOSE_RULE = "rw:close"
CLOSE_FIELD = "rw_close"
#: A join rule's action name ends with this (regelwerk.rules.translate.JOIN): its recorder keeps the facts too.
JOIN = "#join"
#: The facts a join rule matched: ``(rule id, {pattern name: fact sequence number})``.
Join = tuple[str, dict[str, int]]
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


class SessionLimit(RegelwerkError):
    """More open fact sessions on one rule set than durable-rules can hold (its 1024-sid limit)."""

    code = "session_limit"

    def __init__(self, limit: int, name: str) -> None:
        self.limit = limit
        self.name = name
        super().__init__(f"cannot open another fact session on {name!r}: {limit} are open; close sessions "
                         "you no longer need (RuleSession.close)")


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

    def open_session(self, name: str) -> str:
        """A fresh session id for facts on ruleset ``name`` (bounded; release it with ``close_session``)."""

    def assert_fact(self, name: str, sid: str, message: Mapping[str, Any]) -> list[Join]:
        """Assert a fact (it carries ``rw_seq``); the join rules that fired with the facts they matched."""

    def retract_fact(self, name: str, sid: str, message: Mapping[str, Any]) -> None:
        """Retract a fact asserted before (the same message)."""

    def close_session(self, name: str, sid: str) -> None:
        """Delete the session's state and free its id."""

    def close(self) -> None:
        """Release the engine's resources."""


def _join_recorder(record: Callable[[Join], None], rule_id: str) -> Callable[[Any], None]:
    """Like :func:`_one_argument`, also recording each matched fact's sequence number by pattern name."""

    def fired(c: Any) -> None:
        record((rule_id, {name: fact.get("rw_seq") for name, fact in dict(c._m).items()}))

    return fired


def _one_argument(record: Callable[[str], None], rule_id: str) -> Callable[[Any], None]:
    """durable calls actions with the closure ``c``; a 2-argument callable would run asynchronously."""

    def fired(c: Any) -> None:
        record(rule_id)

    return fired


class DurableRules:
    """The durable-rules implementation of :class:`RulesPort` (one Host, no timer threads)."""

    def __init__(self, max_rulesets: int = 1000, flush_every: int = 64, max_sessions: int = 1000) -> None:
        import durable.engine as durable_engine

        self._engine = durable_engine
        self._lock = threading.Lock()
        self._fired: list[str] = []
        self._seq = 0
        self._since_flush: dict[str, int] = {}
        self._loaded: set[str] = set()
        self.max_rulesets = max_rulesets
        self.flush_every = max(1, flush_every)
        # durable holds at most 1024 live sids per ruleset; one is the scratch session
        self.max_sessions = max(1, min(max_sessions, 1000))
        self._sessions: dict[str, dict[str, dict[Any, dict[str, Any]]]] = {}  # name -> sid -> live facts
        self._next_sid = 0
        self._joins: list[Join] = []
        self._closed = False
        record = self._fired.append
        record_join = self._joins.append

        class _Host(durable_engine.Host):  # type: ignore[misc]  # durable ships no type hints
            """A Host that starts no timer threads and resolves actions to recorders."""

            def _run(self) -> None:
                """durable starts two self-rescheduling timers here; regelwerk uses no durable timers."""

            def get_action(self, action_name: str) -> Callable[[Any], None]:
                rule_id = action_name.rsplit("/", 1)[-1]
                if rule_id.endswith(JOIN):
                    return _join_recorder(record_join, rule_id[: -len(JOIN)])
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
                definition = copy.deepcopy(dict(ruleset))
                definition[CLOSE_RULE] = {"all": [{"m": {CLOSE_FIELD: 1}}], "run": f"{name}/{CLOSE_RULE}"}
                self._host.register_rulesets({name: definition})
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

    def open_session(self, name: str) -> str:
        """A fresh sid for a fact session on ``name``; at most ``max_sessions`` open at once (``SessionLimit``)."""
        with self._lock:
            self._check_open()
            if name not in self._loaded:
                raise RulesEngineError("open a session", name, "ruleset not loaded")
            live = self._sessions.setdefault(name, {})
            if len(live) >= self.max_sessions:
                raise SessionLimit(self.max_sessions, name)
            self._next_sid += 1
            sid = f"s{self._next_sid}"
            live[sid] = {}
            return sid

    def assert_fact(self, name: str, sid: str, message: Mapping[str, Any]) -> list[Join]:
        """Assert ``message`` in session ``sid``; every join rule combination that became complete."""
        engine = self._engine
        with self._lock:
            facts = self._session(name, sid)
            joins = self._joins
            joins.clear()
            fact = {**message, "sid": sid}
            facts[fact.get("rw_seq")] = fact
            try:
                self._host.assert_fact(name, fact)
            except (engine.MessageNotHandledException, engine.MessageObservedException):
                pass  # nothing matched (identical facts cannot happen: every fact has its rw_seq)
            except Exception as exc:
                joins.clear()
                facts.pop(fact.get("rw_seq"), None)
                raise RulesEngineError("assert a fact", name, str(exc)) from exc
            result = list(joins)
            joins.clear()
            self._fired.clear()  # single-message rules never match a fact message; keep the list empty anyway
            return result

    def retract_fact(self, name: str, sid: str, message: Mapping[str, Any]) -> None:
        """Retract a fact asserted with exactly this ``message``."""
        engine = self._engine
        with self._lock:
            self._session(name, sid).pop(message.get("rw_seq"), None)
            try:
                self._host.retract_fact(name, {**message, "sid": sid})
            except (engine.MessageNotHandledException, engine.MessageObservedException):
                pass
            except Exception as exc:
                raise RulesEngineError("retract a fact", name, str(exc)) from exc
            finally:
                self._joins.clear()
                self._fired.clear()

    def close_session(self, name: str, sid: str) -> None:
        """Delete the session's facts in durable and free its sid (no-op when closed already)."""
        with self._lock:
            if self._closed:
                return
            self._close_session(name, sid)

    def _close_session(self, name: str, sid: str) -> None:
        facts = self._sessions.get(name, {}).pop(sid, None)
        if facts is None:
            return
        # delete_state on a session holding a partly matched join crashes durable (segmentation fault):
        # retract every live fact first, then delete the (now empty) state to free the sid
        for fact in facts.values():
            with contextlib.suppress(Exception):
                self._host.retract_fact(name, fact)
        self._delete_state(name, sid)

    def open_sessions(self, name: str) -> int:
        """How many fact sessions are open on ruleset ``name``."""
        return len(self._sessions.get(name, ()))

    def _session(self, name: str, sid: str) -> dict[Any, dict[str, Any]]:
        self._check_open()
        facts = self._sessions.get(name, {}).get(sid)
        if facts is None:
            raise RulesEngineError("use a session", name, f"session {sid!r} is not open")
        return facts

    def session_size(self, name: str, sid: str = SID) -> int:
        """How many facts a session holds now (the scratch session: bounded by ``flush_every``)."""
        with self._lock:
            try:
                return len(self._host.get_facts(name, sid))
            except Exception:  # noqa: BLE001 - durable: "Could not get facts" when the session is empty
                return 0

    def _flush(self, name: str) -> None:
        self._delete_state(name, SID)

    def _delete_state(self, name: str, sid: str) -> None:
        """Delete a session's state; first fire ``rw:close`` in it (delete_state segfaults where nothing fired)."""
        self._seq += 1
        with contextlib.suppress(Exception):  # MessageObserved/NotHandled cannot matter here
            self._host.assert_fact(name, {"sid": sid, CLOSE_FIELD: 1, "rw_seq": self._seq})
        self._fired.clear()
        self._joins.clear()
        with contextlib.suppress(Exception):  # deleting a session that is already gone is fine
            self._host.delete_state(name, sid)

    def _check_open(self) -> None:
        if self._closed:
            raise RulesEngineError("use the engine", "-", "the rules port is closed")

    def close(self) -> None:
        """Release every ruleset's memory in the C extension; the port cannot be used afterwards."""
        with self._lock:
            if self._closed:
                return
            for name, sessions in sorted(self._sessions.items()):
                for sid in sorted(sessions):
                    self._close_session(name, sid)
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
