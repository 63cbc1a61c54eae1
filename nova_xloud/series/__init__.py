"""Tooling that puts the nova-xloud patch series onto an upstream Nova."""
