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

"""RPC endpoint of nova-xloud on the conductor service.

Registered on the ``nova.conductor.rpc_endpoints`` entry point: the
conductor manager calls create_endpoint(manager) and serves the result
beside its own endpoints, on the conductor topic. nova-compute calls it to
write the live adjust records in the database it cannot reach.
"""

import oslo_messaging as messaging

from nova_xloud.conductor import rpcapi
from nova_xloud import store


class XloudConductorEndpoint(object):

    target = messaging.Target(namespace=rpcapi.NAMESPACE,
                              version=rpcapi.VERSION)

    def swap_records(self, context, instance_uuid, expected, changes):
        # The context is not targeted at a cell: like Nova's own object
        # calls, the write goes to this conductor's database, which is
        # the cell database of the computes that reach it.
        return store.swap(context, instance_uuid, expected, changes)


def create_endpoint(manager):
    return XloudConductorEndpoint()
