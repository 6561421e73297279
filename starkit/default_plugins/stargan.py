"""Default plugin: stargan (placeholder until its module lands)."""
