"""The recruitment pack: candidate statuses and groups, recruitment workflows, organisation structure,
vacancies and applications, mail templates through the outbox, and AVG retention.

HROffice Recruitment and step2HR's vacancies made declarative; see docs/recruitment.md and
docs/packs/recruitment.md.
"""

from __future__ import annotations

from regelwerk.registry import Registry

__all__ = ["RecruitmentPlugin", "plugin"]


class RecruitmentPlugin:
    """Registers the recruitment kinds, actions, scenario steps and CLI commands."""

    name = "recruitment"

    def register(self, registry: Registry) -> None:
        """Add the pack's contributions (imports stay inside: loading the registry is cheap)."""
        from pathlib import Path

        from regelwerk.registry import DigestSourceSpec, lazy
        from regelwerk_packs.recruitment import (
            commands,
            digest,
            facts,
            kinds,
            registration,
            report,
            simulation,
            steps,
        )

        report.register(registry, self.name)

        facts.register_facts(registry, self.name)
        kinds.register_kinds(registry, self.name)
        simulation.register(registry, self.name)
        registry.add_table_module("regelwerk_packs.recruitment.tables")
        registry.add_migrations(str(Path(__file__).resolve().parent / "migrations" / "versions"))
        registration.register_actions(registry, self.name)
        steps.register_steps(registry, self.name)
        registry.add_command(commands.retention_group)
        registry.add_digest_source(DigestSourceSpec(
            "recruitment.waiting_candidates", self.name, lazy("regelwerk_packs.recruitment.digest:waiting_candidates"),
            fields=digest.FIELDS, params_schema=digest.PARAMS_SCHEMA,
            description="candidates of open vacancies waiting in the same status for more than `days` (5) days"))


plugin = RecruitmentPlugin()
