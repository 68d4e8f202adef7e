"""Shared by every stage: params (the schema of params.yaml), the user-error type, safe atomic outputs and
output-path checks, hardware choices, and which code files a stage runs."""
