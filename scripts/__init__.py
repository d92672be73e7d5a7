"""Developer and CI scripts (not part of the installed package)."""
