"""Placeholder family module."""
