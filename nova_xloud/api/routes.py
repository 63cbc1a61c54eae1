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

"""Routes of nova-xloud, served by Nova's v2.1 router.

Registered on the ``nova.api.v21.routes`` entry point; the router maps the
entries returned by routes() like its own ROUTE_LIST, so the stock
api-paste.ini serves them.
"""

import functools

from nova.api.openstack import wsgi

from nova_xloud.api import adjust


def _create_controller(controller_class):
    return wsgi.Resource(controller_class())


adjust_controller = functools.partial(_create_controller,
                                      adjust.AdjustController)


ADJUST_METHODS = {
    'GET': [adjust_controller, 'show'],
    'POST': [adjust_controller, 'adjust'],
}


def routes():
    return (
        ('/os-xloud-adjust/{server_id}', ADJUST_METHODS),
        # The path of the original XLoud fork, which its clients call:
        # the same controller, schemas and policies.
        ('/servers/{server_id}/os-xloud-adjust', ADJUST_METHODS),
    )
