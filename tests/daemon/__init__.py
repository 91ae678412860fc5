"""Daemon, runner, scheduler, listener, systemd."""
