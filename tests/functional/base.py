"""The base of our functional tests: Nova's own libvirt functional base."""

import os
import sys

from nova.tests.functional.libvirt import base


def installed_api_paste_config():
    """Nova's api-paste.ini where pip installs it, or None."""
    path = os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')
    return path if os.path.exists(path) else None


class ServersTestBase(base.ServersTestBase):
    """Nova's ServersTestBase, runnable on a pip-installed Nova.

    Nova's conf fixture looks for api-paste.ini beside the nova package,
    where a source tree keeps it; pip installs it in <prefix>/etc/nova.
    """

    def _setup_services(self):
        path = installed_api_paste_config()
        if path:
            self.flags(api_paste_config=path, group='wsgi')
        super()._setup_services()
