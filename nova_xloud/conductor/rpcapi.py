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

"""RPC client of the nova-xloud conductor endpoint.

nova-compute has no database access; it writes the live adjust records
through this endpoint, which runs the same atomic write as nova-api in the
conductor's database. The endpoint lives on the conductor topic in its own
``xloud_records`` namespace with its own version, so Nova's conductor RPC
API and service version are untouched. A conductor that does not run
nova-xloud has no endpoint in that namespace and answers with
UnsupportedVersion.
"""

import oslo_messaging as messaging

from nova.conductor import rpcapi as conductor_rpcapi
from nova import rpc

NAMESPACE = 'xloud_records'
VERSION = '1.0'


class XloudConductorAPI(object):
    """Client side of the xloud conductor RPC API.

    API version history:

    * 1.0 - swap_records
    """

    def __init__(self):
        target = messaging.Target(topic=conductor_rpcapi.RPC_TOPIC,
                                  namespace=NAMESPACE, version=VERSION)
        self.client = rpc.get_client(target)

    def swap_records(self, ctxt, instance_uuid, expected, changes):
        """Write changes if the stored records still equal expected.

        :param expected: every ``xloud_*`` record of the server, as the
            caller last saw them
        :param changes: {key: new value, or None to delete}
        :returns: (True, None) once written, else (False, the stored
            records)
        """
        cctxt = self.client.prepare(version=VERSION)
        swapped, stored = cctxt.call(
            ctxt, 'swap_records', instance_uuid=instance_uuid,
            expected=expected, changes=changes)
        return swapped, stored


def endpoint_missing(error):
    """True when the conductor does not serve the xloud_records namespace."""
    names = ('UnsupportedVersion', 'NoSuchMethod')
    if isinstance(error, messaging.RemoteError):
        return error.exc_type in names
    return isinstance(error, (messaging.UnsupportedVersion,
                              messaging.NoSuchMethod))
