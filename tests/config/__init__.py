"""Config loading and validation."""
