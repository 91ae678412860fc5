"""Shared fixtures: real peers started on loopback with free ports."""

pytest_plugins = ["tests.fixtures_dicom", "tests.fixtures_http"]
