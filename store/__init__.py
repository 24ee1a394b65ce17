"""The async SQLite archive: schema, migrations, queries."""

from .archive import Archive, ArchiveOrder, BadCursor, DuplicateProgram, StorageError
from .records import EvaluationResult, ProgramRecord, RunRecord

__all__ = ["Archive", "ArchiveOrder", "BadCursor", "DuplicateProgram", "EvaluationResult", "StorageError", "ProgramRecord",
           "RunRecord"]
