"""The domain (DESIGN.md §2): plain Python, no I/O, nothing of ours imported.

What others use: ``model`` (resources, versions, items, the enumerations: 共享/开放属性, 更新周期 …),
``codes`` (GB 32100 / GB 11643 check characters), ``records`` (records, their canonical form, item checks),
``lists`` (responsibility and demand lists, grants, compliance), ``matching`` (demand → resource
suggestions), ``interchange`` (metadata ↔ plain dicts for files and the wire), ``errors`` (CatalogError
and its subclasses). Import the module you need; nothing is re-exported here.
"""
