"""The migration report: the JSON ``sapphire migrate`` leaves in its termination message.

One definition for both sides of that wire: the migration container writes it
(:mod:`sapphire.migrations.runner`) and the operator reads it
(:mod:`sapphire.operator.migrations`). Kept free of alembic and SQLAlchemy imports, so the
operator does not load them to read a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sapphire.domain import termination


@dataclass(frozen=True)
class MigrationReport:
    """``{"from", "to", "applied", "revisions"}``, or ``error`` when the migration failed."""

    from_revision: str | None = None
    to_revision: str | None = None
    applied: list[str] = field(default_factory=list)
    """Revisions run (upgrade, oldest first) or reverted (downgrade, newest first)."""
    revisions: list[str] = field(default_factory=list)
    """The lineage of ``to_revision``: it and every ancestor, newest first."""
    error: str | None = None

    def to_json(self) -> str:
        data: dict[str, object] = {
            "from": self.from_revision,
            "to": self.to_revision,
            "applied": self.applied,
            "revisions": self.revisions,
        }
        if self.error is not None:
            data["error"] = self.error
        return termination.dump(data)

    @classmethod
    def parse(cls, message: str) -> MigrationReport | None:
        """The report in a termination message, or None when the message is not one."""
        data = termination.load(message)
        if data is None:
            return None
        return cls(
            from_revision=data.get("from"),
            to_revision=data.get("to"),
            applied=[str(r) for r in data.get("applied") or []],
            revisions=[str(r) for r in data.get("revisions") or []],
            error=data.get("error"),
        )
