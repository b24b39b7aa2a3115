"""Shared fixtures. Subsystems keep their own fixtures in their folder's conftest."""
