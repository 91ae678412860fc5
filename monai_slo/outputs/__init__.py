"""What the daemon shows: metrics, exposition, rules, dashboards, status page, report."""
