"""The catalog's error hierarchy: each error names the field, code or state it is about."""

from __future__ import annotations

from dataclasses import dataclass


class CatalogError(Exception):
    """Base of every domain error; node/grpc maps each subclass to one gRPC status in one table."""


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field: ``field`` is a path such as ``items[2].length``."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class InvalidField(CatalogError):
    """One or more fields of a request are invalid; nothing was changed."""

    def __init__(self, problems: list[FieldProblem] | FieldProblem, *, subject: str = "") -> None:
        self.problems = [problems] if isinstance(problems, FieldProblem) else list(problems)
        self.subject = subject
        prefix = f"{subject}: " if subject else ""
        super().__init__(prefix + "; ".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, field: str, reason: str) -> InvalidField:
        return cls(FieldProblem(field, reason))


@dataclass(frozen=True)
class EntryProblems:
    """The problems of one entry of a batch (an import file), located by its index."""

    index: int
    code: str
    problems: list[FieldProblem]


class InvalidBatch(CatalogError):
    """A batch (an import) has bad entries; the whole batch is refused and every bad entry listed."""

    def __init__(self, entries: list[EntryProblems]) -> None:
        self.entries = entries
        parts = []
        for entry in entries:
            label = f"entry {entry.index}" + (f" ({entry.code})" if entry.code else "")
            parts.append(label + ": " + "; ".join(str(p) for p in entry.problems))
        super().__init__(f"{len(entries)} bad entr{'y' if len(entries) == 1 else 'ies'}: " + " | ".join(parts))


class AlreadyExists(CatalogError):
    def __init__(self, what: str, key: str) -> None:
        self.what, self.key = what, key
        super().__init__(f"{what} {key} already exists")


class NotFound(CatalogError):
    def __init__(self, what: str, key: str) -> None:
        self.what, self.key = what, key
        super().__init__(f"{what} {key} not found")


class IllegalTransition(CatalogError):
    """An action that the current lifecycle state does not allow."""

    def __init__(self, state: str, action: str, detail: str = "", *, what: str = "resource") -> None:
        self.state, self.action = state, action
        message = f"cannot {action} a {what} in state {state}"
        super().__init__(message + (f": {detail}" if detail else ""))


class Conflict(CatalogError):
    """Optimistic concurrency: somebody else changed the resource since the caller read it."""
