# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""WSGI application factories for gunicorn, one per service.

gunicorn loads them as ``nova_xloud.realcloud.wsgi_apps:nova_api()``.
Each service reads its configuration from the directory named in its
usual environment variable, which the cloud sets.
"""

import sys


def _own_argv():
    # Nova and Keystone parse the process's argv as their own command
    # line and refuse gunicorn's options.
    del sys.argv[1:]


def nova_api():
    _own_argv()
    try:
        # 2025.1 and later: the module patches (or not) for eventlet
        # before it builds the application.
        from nova.wsgi import osapi_compute
    except ImportError:
        from nova.api.openstack.compute import wsgi
        return wsgi.init_application()
    return osapi_compute.application


def keystone():
    _own_argv()
    from keystone.server import wsgi
    return wsgi.initialize_public_application()


def placement():
    _own_argv()
    try:
        from placement import wsgi
        return wsgi.init_application()
    except AttributeError:
        from placement.wsgi import api
        return api.application


def glance():
    _own_argv()
    from glance.common import wsgi_app
    return wsgi_app.init_app()


def neutron_standin():
    from nova_xloud.realcloud import neutron_standin
    return neutron_standin.application
