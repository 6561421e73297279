"""Default plugin: cards (placeholder until its module lands)."""
