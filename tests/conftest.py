"""Shared fixtures: real peers started on loopback with free ports."""

pytest_plugins = [
    "tests.fixtures_dicom",
    "tests.fixtures_http",
    "tests.fixtures_browser",
    "tests.fixtures_prometheus",
    "tests.fixtures_study_flow",
]
