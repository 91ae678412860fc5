"""History: the SQLite store, timelines built from it, and their evaluation."""
