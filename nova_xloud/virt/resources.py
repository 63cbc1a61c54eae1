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

"""Minimum and current guest resources derived from Nova-owned records.

A flavor's ``vcpus`` and ``ram`` are the most a server may have. The
``minimum_cpu`` and ``minimum_memory`` extra specs say how much it starts
with. Only the flavor (``instance.flavor`` on the compute side) and,
later, ``instance.system_metadata`` may drive these values: server
metadata is writable by the tenant and is never read here.
"""

import collections
import re

from nova.compute import task_states
from nova.db import constants as db_const
from nova import exception
from oslo_log import log as logging
from oslo_utils import strutils

LOG = logging.getLogger(__name__)

MINIMUM_CPU = 'minimum_cpu'
MINIMUM_MEMORY = 'minimum_memory'

# Reserved for the live adjust API: the values it persists will replace the
# minimum as what the guest boots with.
CURRENT_VCPUS_KEY = 'xloud_current_vcpus'
CURRENT_MEMORY_MB_KEY = 'xloud_current_memory_mb'

MAX_AMOUNT = db_const.MAX_INT
_MAXIMUM_NAMES = {MINIMUM_CPU: "the flavor's vcpus",
                  MINIMUM_MEMORY: "the flavor's ram (MiB)"}
_WHOLE_NUMBER = re.compile(r'[1-9][0-9]*')

Resources = collections.namedtuple('Resources', ['vcpus', 'memory_mb'])
NO_RESOURCES = Resources(vcpus=None, memory_mb=None)


class InvalidMinimumResources(exception.InvalidRequest):
    # InvalidRequest is one of the exceptions that the servers API turns
    # into 400 for create, rebuild and resize.
    msg_fmt = "Invalid minimum resources in flavor %(flavor)s: %(reason)s"


def parse_amount(name, value):
    """Return a spec value as a whole number from 1 to MAX_AMOUNT.

    :raises: ValueError naming the spec and the allowed values.
    """
    text = str(value)
    if not _WHOLE_NUMBER.fullmatch(text) or int(text) > MAX_AMOUNT:
        raise ValueError(
            f"extra spec '{name}' must be a whole number from 1 to "
            f"{_MAXIMUM_NAMES[name]}, got '{text}'")
    return int(text)


def requested_minimum(flavor):
    """Return the validated minimum of a flavor; None where not requested.

    :raises: InvalidMinimumResources for a value that is not a whole number
        from 1 to the flavor's vcpus or ram.
    """
    specs = _extra_specs(flavor)
    vcpus = _checked_minimum(flavor, specs, MINIMUM_CPU, 'vcpus')
    memory_mb = _checked_minimum(flavor, specs, MINIMUM_MEMORY, 'memory_mb')
    return Resources(vcpus=vcpus, memory_mb=memory_mb)


def _checked_minimum(flavor, specs, name, maximum_field):
    if name not in specs:
        return None
    try:
        amount = parse_amount(name, specs[name])
    except ValueError as e:
        raise InvalidMinimumResources(
            flavor=_flavor_label(flavor), reason=str(e))
    maximum = flavor[maximum_field]
    if amount > maximum:
        raise InvalidMinimumResources(
            flavor=_flavor_label(flavor),
            reason=f"{name}={amount} exceeds the flavor's "
                   f"{_flavor_field_name(maximum_field)}={maximum}")
    return amount


def _extra_specs(flavor):
    # A default avoids a lazy load (and its failure) on a bare Flavor.
    return flavor.get('extra_specs', {}) or {}


def _flavor_label(flavor):
    return repr(flavor.get('name', None) or flavor.get('flavorid', ''))


def _flavor_field_name(field):
    return 'ram' if field == 'memory_mb' else field


def conflicting_settings(flavor, image_meta, minimum):
    """List the settings that cannot work with the requested minimum.

    :param image_meta: ``nova.objects.ImageMeta`` or None
    :param minimum: a Resources from requested_minimum()
    :returns: list of (minimum spec, conflicting setting) strings
    """
    found = []
    if minimum.vcpus is not None:
        found += [(f'{MINIMUM_CPU}={minimum.vcpus}', setting)
                  for setting in _cpu_conflicts(flavor, image_meta)]
    if minimum.memory_mb is not None:
        found += [(f'{MINIMUM_MEMORY}={minimum.memory_mb}', setting)
                  for setting in _memory_conflicts(flavor, image_meta)]
    return found


def _cpu_conflicts(flavor, image_meta):
    # Pinned or realtime vCPUs are claimed as PCPU for the flavor's vcpus
    # and a multi-node guest spreads its vCPUs over fixed NUMA cells, so
    # neither can start with fewer vCPUs.
    conflicts = _settings(flavor, image_meta, 'cpu_policy',
                          lambda v: v in ('dedicated', 'mixed'))
    conflicts += _settings(flavor, None, 'cpu_realtime', _is_true)
    conflicts += _settings(flavor, image_meta, 'numa_nodes', _is_multi_node)
    conflicts += _explicit_resources(flavor, ('VCPU', 'PCPU'))
    return conflicts


def _memory_conflicts(flavor, image_meta):
    # Huge pages, encrypted and locked memory are all fully backed at boot
    # and cannot be ballooned.
    conflicts = _settings(flavor, image_meta, 'mem_page_size',
                          lambda v: True)
    conflicts += _settings(flavor, image_meta, 'mem_encryption', _is_true)
    conflicts += _settings(flavor, image_meta, 'locked_memory', _is_true)
    conflicts += _explicit_resources(flavor, ('MEMORY_MB',))
    return conflicts


def _settings(flavor, image_meta, key, is_conflict):
    found = []
    flavor_value = _extra_specs(flavor).get(f'hw:{key}')
    if flavor_value is not None and is_conflict(flavor_value):
        found.append(f'hw:{key}={flavor_value}')
    if image_meta is not None and 'properties' in image_meta:
        image_value = image_meta.properties.get(f'hw_{key}')
        if image_value is not None and is_conflict(image_value):
            found.append(f'image property hw_{key}={image_value}')
    return found


def _explicit_resources(flavor, resource_classes):
    pattern = re.compile(r'resources[a-zA-Z0-9_-]*:(%s)' %
                         '|'.join(resource_classes))
    return [f'{key}={value}'
            for key, value in _extra_specs(flavor).items()
            if pattern.fullmatch(key)]


def _is_true(value):
    return strutils.bool_from_string(value)


def _is_multi_node(value):
    return strutils.is_int_like(value) and int(value) > 1


def validate_minimum(flavor, image_meta=None):
    """Return the flavor's minimum after refusing what cannot work.

    :raises: InvalidMinimumResources naming the values in question.
    """
    minimum = requested_minimum(flavor)
    conflicts = conflicting_settings(flavor, image_meta, minimum)
    if conflicts:
        reason = '; '.join(f'{spec} cannot be combined with {setting}'
                           for spec, setting in conflicts)
        raise InvalidMinimumResources(
            flavor=_flavor_label(flavor), reason=reason)
    return minimum


def minimum_resources(flavor):
    """Return the usable minimum of a flavor, ignoring an unusable one.

    The API refuses unusable flavors for create, rebuild and resize; one
    can only reach a compute or the scheduler from before this package
    was installed, and then the server keeps its flavor's full amounts.
    """
    try:
        return validate_minimum(flavor)
    except InvalidMinimumResources as e:
        LOG.warning('Ignoring minimum resources: %s', e.format_message())
        return NO_RESOURCES


def current_resources(instance, flavor):
    """Return the vCPUs and memory (MiB) the guest should boot with.

    None in a field means the flavor's maximum. The values persisted by
    the live adjust API under CURRENT_VCPUS_KEY and CURRENT_MEMORY_MB_KEY in
    instance.system_metadata (never server metadata) when they were stored
    for this flavor and are in its range, else the flavor minimum.

    A rescue domain starts with what the guest has now, its live values
    when it has some: unrescue restores the domain saved before the
    rescue, which has them, so a rescue changes nothing that the records
    or placement hold.
    """
    # Imported here: records builds on this module.
    from nova_xloud import records
    if is_rescuing(instance):
        live = records.live(instance, flavor)
        if live is not None:
            return live
    return records.boot_resources(instance, flavor)


def is_rescuing(instance):
    return instance.obj_attr_is_set('task_state') and (
        instance.task_state == task_states.RESCUING)
