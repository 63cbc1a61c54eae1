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

"""VCPU and MEMORY_MB of a server's allocation on its compute node.

The allocation follows the guest: raised before an increase (so an
increase that does not fit is refused before the guest is touched) and set
to what the guest has after every adjustment.
"""

import os_resource_classes as orc

from nova import exception
from nova import objects
from nova.scheduler.client import report


class PlacementRefused(exception.NovaException):
    msg_fmt = ("Placement cannot set %(amounts)s for server %(uuid)s on "
               "host %(host)s: %(reason)s")


def _compute_node_rp(context, instance, allocations):
    for rp_uuid, alloc in allocations.items():
        if orc.VCPU in alloc['resources'] or (
                orc.MEMORY_MB in alloc['resources']):
            return rp_uuid
    node = objects.ComputeNode.get_by_host_and_nodename(
        context, instance.host, instance.node)
    return node.uuid


def set_amounts(context, instance, vcpus=None, memory_mb=None,
                only_increase=False, client=None):
    """Set VCPU/MEMORY_MB of the server's allocation (None: unchanged).

    :param only_increase: leave amounts that are already at least as big
    :returns: True if the allocation changed
    :raises: PlacementRefused on a consumer generation conflict or when the
        provider has no room
    """
    client = client or report.report_client_singleton()
    current = client.get_allocs_for_consumer(context, instance.uuid)
    allocations = current.get('allocations') or {}
    if not allocations:
        return False
    rp_uuid = _compute_node_rp(context, instance, allocations)
    resources = dict(allocations.get(rp_uuid, {}).get('resources', {}))
    wanted = {}
    for rc, amount in ((orc.VCPU, vcpus), (orc.MEMORY_MB, memory_mb)):
        if amount is None or resources.get(rc) == amount:
            continue
        if only_increase and resources.get(rc, 0) >= amount:
            continue
        wanted[rc] = amount
    if not wanted:
        return False
    resources.update(wanted)
    payload = {
        'allocations': {
            rp: {'resources': (resources if rp == rp_uuid
                               else alloc['resources'])}
            for rp, alloc in allocations.items()},
        'consumer_generation': current.get('consumer_generation'),
        'project_id': current.get('project_id', instance.project_id),
        'user_id': current.get('user_id', instance.user_id),
    }
    if rp_uuid not in payload['allocations']:
        payload['allocations'][rp_uuid] = {'resources': resources}
    amounts = ', '.join('%s=%s' % item for item in sorted(wanted.items()))
    try:
        done = client.put_allocations(context, instance.uuid, payload)
    except exception.AllocationUpdateFailed as e:
        raise PlacementRefused(amounts=amounts, uuid=instance.uuid,
                               host=instance.host,
                               reason=e.format_message())
    if not done:
        # put_allocations returns None when placement cannot be reached
        # (safe_connect) and False when it refuses the amounts.
        reason = ('placement could not be reached' if done is None
                  else 'not enough free capacity')
        raise PlacementRefused(amounts=amounts, uuid=instance.uuid,
                               host=instance.host, reason=reason)
    return True
