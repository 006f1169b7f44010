"""Map stage: dry run and commit of source rows into canonical shape records."""
