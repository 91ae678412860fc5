"""Check kinds: one module each; ``registry`` maps a config's ``kind`` to its module."""
