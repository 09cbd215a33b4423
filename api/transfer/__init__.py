"""Reading, validating, importing and exporting vector files."""
