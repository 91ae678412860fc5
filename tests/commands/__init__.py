"""The CLI verbs."""
