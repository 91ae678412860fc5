"""SLO math."""
