"""Event-condition-action rules (the ``RuleSet`` kind) on durable-rules, behind regelwerk's own port.

Only :mod:`regelwerk.rules.port` imports ``durable`` (lazily, when a port is created).
Public API: ``RuleEngine(...).post(model, event, context) -> RuleOutcome``; ``RuleEngine.session()``
(a ``RuleSession`` of facts for join rules); the pure
translator ``to_durable_ruleset(model)``; the port ``RulesPort`` / ``DurableRules``.
"""

from __future__ import annotations

from regelwerk.rules.model import ActionCall, Pattern, Rule, RuleSetModel
from regelwerk.rules.port import DurableRules, RulesEngineError, RuleSetLimit, RulesPort, SessionLimit
from regelwerk.rules.runtime import (
    ActionContext,
    FiredRule,
    RuleEngine,
    RuleHooks,
    RuleOutcome,
    RuleSession,
    WorkflowHooks,
)
from regelwerk.rules.translate import durable_limits, durable_name, to_durable_ruleset

__all__ = [
    "ActionCall",
    "ActionContext",
    "DurableRules",
    "FiredRule",
    "Pattern",
    "Rule",
    "RuleEngine",
    "RuleHooks",
    "RuleOutcome",
    "RuleSession",
    "RuleSetLimit",
    "RuleSetModel",
    "RulesEngineError",
    "RulesPort",
    "SessionLimit",
    "WorkflowHooks",
    "durable_limits",
    "durable_name",
    "to_durable_ruleset",
]
