"""A one-node cloud of the patched Nova on real services, for tests."""
