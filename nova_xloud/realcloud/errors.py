"""Errors of the real-cloud tier."""


class RealCloudError(Exception):
    """A step of bringing up or driving the real cloud failed."""
