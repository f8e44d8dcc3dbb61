"""File formats: ``catalog`` (read_catalog_file, write_catalog_file: JSON and XML against
``schemas/catalog.xsd``), ``lists`` (responsibility and demand lists as CSV or XML), ``manifest_xml``
(a closed day's manifest). XML from outside goes through ``security.xml``.
"""
