"""Who may read the audit log: every team (the admin key) or one team (a team auditor)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AuditScope"]


@dataclass(frozen=True, slots=True)
class AuditScope:
    team: str | None  # None: all teams

    @classmethod
    def all_teams(cls) -> AuditScope:
        return cls(None)

    @classmethod
    def only(cls, team: str) -> AuditScope:
        return cls(team)

    @property
    def is_admin(self) -> bool:
        """Only the all-teams scope sees decrypted ``full`` prompts and responses."""
        return self.team is None

    def allows(self, team: str | None) -> bool:
        return self.team is None or team == self.team
