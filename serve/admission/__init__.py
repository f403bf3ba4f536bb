"""Admission: rate limits, concurrency limits and budgets, exact across replicas."""

from serve.admission.admission import Admission, BudgetExceeded, TeamLimits, Ticket
from serve.admission.policy import AdmissionPolicy, AlertPolicy, BudgetPolicy, LimitPolicy

__all__ = [
    "Admission",
    "AdmissionPolicy",
    "AlertPolicy",
    "BudgetExceeded",
    "BudgetPolicy",
    "LimitPolicy",
    "TeamLimits",
    "Ticket",
]
