"""Fixtures built on Nova's own test fixtures.

Shared by our functional tests and ``nova-xloud demo``, which runs the
same in-process deployment. Importing this package needs Nova's tests and
their requirements (``nova-xloud install RELEASE --with-tests``).
"""

# Nova's functional test package does what each release needs before
# anything else is imported: eventlet monkey patching, or native threads
# when OS_NOVA_DISABLE_EVENTLET_PATCHING is set (2026.2).
import nova.tests.functional  # noqa
