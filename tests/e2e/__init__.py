"""Whole-stack runs: real Prometheus, Alertmanager, kubectl, the daemon's files and secrets."""
