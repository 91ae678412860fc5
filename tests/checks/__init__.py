"""Check kinds against real peers."""
