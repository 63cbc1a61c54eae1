"""``nova-xloud demo``: live vertical scaling without a cloud.

``environment`` finds or builds a Python that has the release's patched
Nova and its test requirements; ``probe`` runs in that Python to say what
it lacks; ``scenario`` runs there too: an in-process Nova on fakelibvirt,
one server with a minimum flavor, adjusted up and down.
"""
