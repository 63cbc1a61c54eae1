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

"""RPC endpoint of nova-xloud on the compute service.

Registered on the ``nova.compute.rpc_endpoints`` entry point: the compute
manager calls create_endpoint(manager) and serves the result beside its
own endpoints. It also adds the drift repair to the manager's periodic
tasks (compute/drift.py).
"""

import oslo_messaging as messaging

from nova_xloud.compute import adjust
from nova_xloud.compute import drift
from nova_xloud.compute import rpcapi
from nova_xloud.virt import libvirt_adjust


class XloudComputeEndpoint(object):

    target = messaging.Target(namespace=rpcapi.NAMESPACE,
                              version=rpcapi.VERSION)

    def __init__(self, manager):
        self.adjuster = adjust.Adjuster(manager)

    def describe_host(self, context):
        return self.adjuster.describe_host(context)

    def guest_memory(self, context, instance):
        return self.adjuster.guest_memory(context, instance)

    def adjust(self, context, instance, vcpus, memory_mb, persist,
               sequence, force=False):
        self.adjuster.adjust(context, instance, vcpus, memory_mb, persist,
                             sequence, force=force)


def create_endpoint(manager):
    drift.register_periodic_task(manager)
    endpoint = XloudComputeEndpoint(manager)
    libvirt_adjust.on_boot_change(endpoint.adjuster.allocation_after_boot)
    return endpoint
