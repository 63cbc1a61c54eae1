# Nova's own test package does what each release needs before anything
# else is imported: eventlet monkey patching, or native threads when
# OS_NOVA_DISABLE_EVENTLET_PATCHING is set (2026.2).
import nova.tests.functional  # noqa
