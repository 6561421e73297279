"""Default plugin: synthetic (placeholder until its module lands)."""
