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

"""Placement amounts of a server: its flavor's minimum or its own values.

Registered on the ``nova.scheduler.resource_overrides`` entry point, which
Nova consults wherever it derives placement amounts from a flavor
(scheduling, claims, resize and moves, heal allocations), with the
RequestSpec being turned into a resource request. Its ``instance_uuid``
names the server when there is one; the server's records are then read
from its cell.

* A new server, a flavor alone, or a server resized to another flavor:
  the flavor's minimum (``[xloud] claim_minimum_in_placement``).
* A live migration keeps the running guest, so it claims what the guest
  has now: the live values (a ``persist: false`` adjustment) or the
  persisted ones.
* Every other move of an existing server (cold migration, evacuation,
  unshelve) boots the guest anew from the persisted values, so it claims
  those (else the flavor's minimum).
* A server that does not move (``nova-manage placement heal_allocations``)
  claims what its guest has now.
"""

import os_resource_classes as orc
from oslo_log import log as logging

from nova.compute import task_states
from nova import context as nova_context
from nova import exception
from nova import objects

from nova_xloud import conf
from nova_xloud import records
from nova_xloud.virt import resources

LOG = logging.getLogger(__name__)

# Task states in which the guest keeps running as it is: no move at all
# (heal allocations) or a live migration.
_GUEST_KEPT = (None, task_states.MIGRATING)


def resource_amounts(flavor, request_spec=None):
    """Return {resource class: amount} to claim for flavor.

    :param request_spec: the RequestSpec being scheduled or healed; when it
        names an existing server, the amounts are that server's values
    """
    instance = _instance_of(request_spec)
    if instance is not None and _same_flavor(instance, flavor):
        own = _own_values(instance, flavor)
        if own is not None:
            return _amounts(own)
    if not conf.CONF.xloud.claim_minimum_in_placement:
        return {}
    return _amounts(resources.minimum_resources(flavor))


def _amounts(values):
    amounts = {orc.VCPU: values.vcpus, orc.MEMORY_MB: values.memory_mb}
    return {rc: amount for rc, amount in amounts.items()
            if amount is not None}


def _same_flavor(instance, flavor):
    # A resize schedules the new flavor: the server starts at its minimum.
    return str(instance.flavor.flavorid) == str(flavor.flavorid)


def _own_values(instance, flavor):
    """The values the server will have where it goes, None if never set."""
    if instance.task_state in _GUEST_KEPT:
        live = records.live(instance, flavor)
        if live is not None:
            return live
    return records.persisted(instance, flavor)


def _instance_of(request_spec):
    if request_spec is None or 'instance_uuid' not in request_spec:
        return None
    uuid = request_spec.instance_uuid
    try:
        return _load_from_cell(uuid)
    except Exception:
        # Claiming the flavor's amounts is what Nova would do; a scheduler
        # that cannot read the cell must not fail every request for it.
        LOG.warning('Could not read the records of server %s; claiming its '
                    'flavor\'s amounts', uuid, exc_info=True)
        return None


def _load_from_cell(uuid):
    """The server from its cell, None before it is created in one."""
    ctxt = nova_context.get_admin_context()
    try:
        mapping = objects.InstanceMapping.get_by_instance_uuid(ctxt, uuid)
    except exception.InstanceMappingNotFound:
        return None
    if not mapping.cell_mapping:
        return None
    with nova_context.target_cell(ctxt, mapping.cell_mapping) as cctxt:
        try:
            return objects.Instance.get_by_uuid(
                cctxt, uuid, expected_attrs=['system_metadata', 'flavor'])
        except exception.InstanceNotFound:
            return None
