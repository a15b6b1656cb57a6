"""The data dictionary: modules, fields and data types are data, never Python classes."""
