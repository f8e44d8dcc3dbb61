"""What reading a catalog file yields, whatever its format: an entry per resource, each with its place
in the file and its metadata or its problems."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.errors import InvalidField
from catalog.model import ResourceMetadata

MAX_FILE_BYTES = 64 * 1024 * 1024


class CatalogFileError(Exception):
    """The file as a whole cannot be read (not JSON/XML, hostile XML, too large, schema-invalid)."""


@dataclass(frozen=True)
class FileEntry:
    location: str
    """Where the entry is: ``resources[3]`` for JSON, ``line 45`` for XML."""
    code: str
    parsed: ResourceMetadata | InvalidField
