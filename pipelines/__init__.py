"""Prefect flows for ipm-outcomes: thin wrappers over the ipm_outcomes package."""
