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

import collections
import random
import re
import time

from keystoneauth1 import exceptions as ks_exc
import os_resource_classes as orc
from oslo_log import log as logging

from nova import exception
from nova import objects
from nova.scheduler.client import report

LOG = logging.getLogger(__name__)

# Generation conflicts (another writer of the allocation or the provider
# between our read and our write) are retried from a fresh read this many
# times, after a short random pause growing with each attempt.
MAX_ATTEMPTS = 10
RETRY_PAUSE = 0.02


# What a set_amounts call left in the allocation on the server's own
# provider, and whether it wrote it.
Allocation = collections.namedtuple('Allocation',
                                    ['changed', 'vcpus', 'memory_mb'])


class PlacementError(exception.NovaException):
    msg_fmt = ("Placement cannot set %(amounts)s for server %(uuid)s on "
               "host %(host)s: %(reason)s")


class PlacementRefused(PlacementError):
    """Placement refuses the amounts: the host has no room for them."""


class PlacementBusy(PlacementError):
    """The allocation kept changing under every attempt."""


class PlacementUnavailable(PlacementError):
    """Placement could not be reached or failed."""


def own_provider(context, instance, allocations):
    """The provider of the server's VCPU and MEMORY_MB where it runs.

    After an evacuation the allocation also holds the source host until
    that host's compute comes back and cleans up: the server's own node
    decides then.
    """
    holders = [rp_uuid for rp_uuid, alloc in allocations.items()
               if orc.VCPU in alloc['resources'] or
               orc.MEMORY_MB in alloc['resources']]
    if len(holders) == 1:
        return holders[0]
    node = objects.ComputeNode.get_by_host_and_nodename(
        context, instance.host, instance.node)
    return node.uuid


def _client(client):
    return client or report.report_client_singleton()


def _errors(response):
    try:
        errors = response.json()['errors']
    except Exception:
        return [], response.text
    detail = ' '.join(error.get('detail') or error.get('title') or ''
                      for error in errors)
    return [error.get('code') for error in errors], detail


def _clean(text):
    # Placement's details have a "409 Conflict" title and blank lines.
    text = re.sub(r'^\d{3} [A-Za-z ]+\s+', '', text.strip())
    return re.sub(r'\s+', ' ', text).strip()


def _call(method, url, context, *args):
    try:
        return method(url, *args,
                      version=report.CONSUMER_GENERATION_VERSION,
                      global_request_id=context.global_id)
    except ks_exc.ClientException as e:
        LOG.warning('Placement could not be reached for %(url)s: %(error)s',
                    {'url': url, 'error': e})
        return None


def _payload(context, instance, current, vcpus, memory_mb, only_increase):
    """The body of PUT /allocations/{uuid}, if one is needed.

    :returns: (payload or None, {rc: amount} it changes, the resources on
        the server's own provider once it is written)
    """
    allocations = current.get('allocations') or {}
    if not allocations:
        return None, {}, {}
    rp_uuid = own_provider(context, instance, allocations)
    resources = dict(allocations.get(rp_uuid, {}).get('resources', {}))
    wanted = {}
    for rc, amount in ((orc.VCPU, vcpus), (orc.MEMORY_MB, memory_mb)):
        if amount is None or resources.get(rc) == amount:
            continue
        if only_increase and resources.get(rc, 0) >= amount:
            continue
        wanted[rc] = amount
    if not wanted:
        return None, {}, resources
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
    return payload, wanted, resources


def _describe(vcpus, memory_mb):
    return ', '.join('%s=%s' % (rc, amount) for rc, amount in (
        (orc.MEMORY_MB, memory_mb), (orc.VCPU, vcpus)) if amount is not None)


def _unavailable(instance, amounts, response, doing):
    if response is None:
        reason = 'placement could not be reached'
    else:
        reason = 'placement answered HTTP %d to %s: %s' % (
            response.status_code, doing, _clean(_errors(response)[1]))
    return PlacementUnavailable(amounts=amounts, uuid=instance.uuid,
                                host=instance.host, reason=reason)


def _held(changed, resources):
    return Allocation(changed, resources.get(orc.VCPU),
                      resources.get(orc.MEMORY_MB))


def _attempt(context, instance, client, vcpus, memory_mb, only_increase):
    """One read and, if needed, one write.

    :returns: (Allocation, None), or (None, placement's detail) when
        another writer changed the allocation between the two
    """
    url = '/allocations/%s' % instance.uuid
    response = _call(client.get, url, context)
    if response is None or response.status_code != 200:
        raise _unavailable(instance, _describe(vcpus, memory_mb), response,
                           'the allocation read')
    payload, wanted, resources = _payload(
        context, instance, response.json(), vcpus, memory_mb, only_increase)
    if not wanted:
        return _held(False, resources), None
    amounts = ', '.join('%s=%s' % item for item in sorted(wanted.items()))
    response = _call(client.put, url, context, payload)
    if response is None:
        raise _unavailable(instance, amounts, None, 'the allocation write')
    if response.status_code == 204:
        return _held(True, resources), None
    codes, detail = _errors(response)
    if response.status_code == 409 and (
            'placement.concurrent_update' in codes):
        return None, detail
    if response.status_code == 409:
        raise PlacementRefused(amounts=amounts, uuid=instance.uuid,
                               host=instance.host, reason=_clean(detail))
    raise _unavailable(instance, amounts, response, 'the allocation write')


def set_amounts(context, instance, vcpus=None, memory_mb=None,
                only_increase=False, client=None):
    """Set VCPU/MEMORY_MB of the server's allocation (None: unchanged).

    One GET and at most one PUT of /allocations/{uuid}; again from the GET
    when another writer changed the allocation meanwhile (bounded).

    :param only_increase: leave amounts that are already at least as big
    :returns: Allocation: whether it changed, and the VCPU and MEMORY_MB it
        holds now on the server's own provider (None where it holds none)
    :raises: PlacementRefused when placement refuses the amounts (no room,
        max_unit; the reason is placement's), PlacementBusy when the
        allocation kept changing, PlacementUnavailable when placement could
        not be reached or failed; all PlacementError
    """
    client = _client(client)
    detail = None
    for _attempt_number in range(MAX_ATTEMPTS):
        held, detail = _attempt(context, instance, client, vcpus, memory_mb,
                                only_increase)
        if held is not None:
            return held
        LOG.debug('Allocation of %(uuid)s changed meanwhile: %(detail)s',
                  {'uuid': instance.uuid, 'detail': detail})
        time.sleep(random.uniform(0, RETRY_PAUSE * (_attempt_number + 1)))
    raise PlacementBusy(
        amounts=_describe(vcpus, memory_mb), uuid=instance.uuid,
        host=instance.host,
        reason='the allocation kept changing during %d attempts (%s)' % (
            MAX_ATTEMPTS, _clean(detail or '')))


# What one resource class of a provider has: the capacity placement
# allows, what all consumers use, what this server holds, and the largest
# amount one consumer may hold (max_unit).
Room = collections.namedtuple('Room', ['capacity', 'used', 'held',
                                       'max_unit'])


def _read(client, context, url, instance, doing):
    response = _call(client.get, url, context)
    if response is None or response.status_code != 200:
        raise _unavailable(instance, 'nothing', response, doing)
    return response.json()


def _capacity(inventory):
    return int((inventory['total'] - inventory.get('reserved', 0)) *
               inventory.get('allocation_ratio', 1.0))


def room(context, instance, client=None):
    """{resource class: Room} of VCPU and MEMORY_MB where the server runs.

    Reads only: the server's allocation, its provider's inventories and
    usages.

    :raises: PlacementUnavailable
    """
    client = _client(client)
    allocations = _read(client, context, '/allocations/%s' % instance.uuid,
                        instance, 'the allocation read')['allocations']
    rp_uuid = own_provider(context, instance, allocations)
    held = allocations.get(rp_uuid, {}).get('resources', {})
    inventories = _read(client, context,
                        '/resource_providers/%s/inventories' % rp_uuid,
                        instance, 'the inventory read')['inventories']
    usages = _read(client, context,
                   '/resource_providers/%s/usages' % rp_uuid, instance,
                   'the usage read')['usages']
    found = {}
    for rc in (orc.VCPU, orc.MEMORY_MB):
        if rc not in inventories:
            continue
        found[rc] = Room(capacity=_capacity(inventories[rc]),
                         used=usages.get(rc, 0), held=held.get(rc, 0),
                         max_unit=inventories[rc].get('max_unit'))
    return found


def room_refusal(found, rc, wanted):
    """Why the provider cannot hold ``wanted`` of rc for the server, or None.

    :param found: what room() returned
    """
    space = found.get(rc)
    if space is None:
        return 'host has no %s inventory in placement' % rc
    if space.max_unit is not None and wanted > space.max_unit:
        return ('placement allows at most %d %s for one server on this '
                'host (max_unit)' % (space.max_unit, rc))
    free = space.capacity - space.used
    needed = wanted - space.held
    if needed > 0 and needed > free:
        return ('host has %d %s free of %d, %d more needed' % (
            max(free, 0), rc, space.capacity, needed))
    return None
