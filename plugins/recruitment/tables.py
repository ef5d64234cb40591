"""Recruitment tables: vacancies, candidates, questionnaires, the anonymous retention log, vacancy audit.

Times are naive UTC (portable between SQLite and PostgreSQL). Personal data lives only in
``rw_candidates`` (and in what was derived from it: outbox rows, questionnaires, workflow
payloads), so an AVG erasure knows where to look.
"""

from __future__ import annotations

import sqlalchemy as sa
from regelwerk.store.tables import metadata

__all__ = ["candidates", "questionnaires", "retention_log", "vacancies", "vacancy_audit"]

vacancies = sa.Table(
    "rw_vacancies", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("function", sa.String(200), nullable=False),
    sa.Column("department", sa.String(200), nullable=False),
    sa.Column("manager", sa.String(200), nullable=False),
    sa.Column("deadline", sa.Date(), nullable=True),
    sa.Column("entity", sa.String(200), nullable=True),
    sa.Column("workflow", sa.String(200), nullable=False),
    sa.Column("templates", sa.JSON(), nullable=False),
    sa.Column("team", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("opened_at", sa.DateTime(), nullable=False),
    sa.Column("opened_by", sa.String(200), nullable=False),
    sa.Column("closed_at", sa.DateTime(), nullable=True),
    sa.Column("closed_by", sa.String(200), nullable=True),
    # the customer's declared vacancy facts (``Facts`` named vacancy: budget_approved...), set by the host; NULL: none
    sa.Column("facts", sa.JSON(), nullable=True),
)

candidates = sa.Table(
    "rw_candidates", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("vacancy_id", sa.String(64), nullable=False),
    sa.Column("instance_id", sa.String(64), nullable=False),
    sa.Column("first_name", sa.String(200), nullable=False),
    sa.Column("last_name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("phone", sa.String(64), nullable=True),
    sa.Column("details", sa.JSON(), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("status", sa.String(200), nullable=False),
    sa.Column("status_group", sa.String(32), nullable=False),
    sa.Column("archived", sa.Boolean(), nullable=False),
    sa.Column("status_since", sa.DateTime(), nullable=False),
    sa.Column("applied_at", sa.DateTime(), nullable=False),
    sa.Column("consent", sa.Boolean(), nullable=False),
    sa.Column("consent_at", sa.DateTime(), nullable=True),
    sa.Column("renewal_requested_at", sa.DateTime(), nullable=True),
    # the customer's declared candidate facts (``Facts`` named candidate: reference_check...), set by the host
    sa.Column("facts", sa.JSON(), nullable=True),
    sa.Index("ix_rw_candidates_vacancy_id", "vacancy_id"),
    sa.Index("ix_rw_candidates_status_group_status_since", "status_group", "status_since"),
    sa.Index("ix_rw_candidates_instance_id", "instance_id"),
)

questionnaires = sa.Table(
    "rw_questionnaires", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("candidate_id", sa.String(64), nullable=False, index=True),
    sa.Column("vacancy_id", sa.String(64), nullable=False),
    sa.Column("competencies", sa.JSON(), nullable=False),
    sa.Column("sent_at", sa.DateTime(), nullable=False),
)

retention_log = sa.Table(
    "rw_retention_log", metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("policy", sa.String(200), nullable=False),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("status", sa.String(200), nullable=False),
    sa.Column("status_group", sa.String(32), nullable=False),
    sa.Column("vacancy_id", sa.String(64), nullable=True),
    sa.Column("applied_month", sa.String(7), nullable=False),
    sa.Column("kept_days", sa.Integer(), nullable=False),
)
"""Anonymous: no candidate id, name or address, only what happened, why, when and how long data was kept."""

vacancy_audit = sa.Table(
    "rw_vacancy_audit", metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("vacancy_id", sa.String(64), nullable=False),
    sa.Column("detail", sa.JSON(), nullable=False),
)
