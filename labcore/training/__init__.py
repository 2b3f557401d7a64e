"""Training both stages (filled in by the restructure)."""
