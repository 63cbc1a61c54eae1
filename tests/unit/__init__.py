# Nova's own test package does what each release needs before anything
# else is imported (monkey patching, registering the versioned objects).
import nova.tests.unit  # noqa
