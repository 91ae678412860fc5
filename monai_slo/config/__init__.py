"""The config: its validated model, loading, maintenance windows, the web config."""
