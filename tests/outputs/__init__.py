"""Metrics, rules, dashboards, status page, report."""
