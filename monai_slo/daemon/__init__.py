"""The daemon: scheduler, runner (deadlines, workers), HTTP listener, systemd."""
