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

"""Live adjust records kept in instance.system_metadata.

Only Nova-owned records (the flavor and system_metadata, which tenants
cannot write) drive these values; server metadata is never read. All keys
start with ``xloud_``. Values are strings, as everything in
system_metadata.

* persisted: the vCPUs and memory (MiB) the guest boots with, valid only
  for the flavor (``flavorid``) they were stored for;
* live: what the running guest has since the last adjustment; the guest
  config hook drops them whenever the domain XML is rebuilt (hard reboot,
  start, rebuild, resize), so they never outlive the guest they describe;
* last: request id, status and message of the last adjustment;
* sequence: bumped by the API for every accepted adjustment so that the
  compute drops one superseded by a newer one;
* allocation stale: set (to the reason) when the placement allocation
  could not be set to what the guest has; whoever sets it later (the drift
  repair) clears it;
* vcpus_unsettled: libvirt lost count of the guest's vCPUs (a timed-out
  unplug); vCPU changes are refused until the domain is defined anew,
  which drops it with the live values.

This module reads and changes a dict and nothing else; nova_xloud.store
writes the changes atomically.
"""

import collections

from nova_xloud import conf
from nova_xloud.virt import resources

CONF = conf.CONF

PREFIX = 'xloud_'
PERSISTED_VCPUS = resources.CURRENT_VCPUS_KEY
PERSISTED_MEMORY_MB = resources.CURRENT_MEMORY_MB_KEY
PERSISTED_FLAVORID = 'xloud_current_flavorid'
LIVE_VCPUS = 'xloud_live_vcpus'
LIVE_MEMORY_MB = 'xloud_live_memory_mb'
LIVE_FLAVORID = 'xloud_live_flavorid'
LAST_REQUEST_ID = 'xloud_last_request_id'
LAST_STATUS = 'xloud_last_status'
LAST_MESSAGE = 'xloud_last_message'
SEQUENCE = 'xloud_adjust_seq'
ALLOCATION_STALE = 'xloud_allocation_stale'
VCPUS_UNSETTLED = 'xloud_vcpus_unsettled'

PERSISTED_KEYS = (PERSISTED_VCPUS, PERSISTED_MEMORY_MB, PERSISTED_FLAVORID)
LIVE_KEYS = (LIVE_VCPUS, LIVE_MEMORY_MB, LIVE_FLAVORID)

STATUS_PENDING = 'pending'
STATUS_SUCCESS = 'success'
STATUS_ERROR = 'error'

# system_metadata values are at most 255 characters.
MAX_VALUE_LENGTH = 255

Range = collections.namedtuple('Range', ['minimum', 'maximum'])
Limits = collections.namedtuple('Limits', ['vcpus', 'memory_mb'])
Last = collections.namedtuple('Last', ['request_id', 'status', 'message'])


class View(object):
    """Records as a dict beside the flavors they are read against.

    Stands for an instance in the functions below (nova_xloud.store hands
    one to the change it applies).
    """

    def __init__(self, system_metadata, flavor=None, old_flavor=None):
        self.system_metadata = system_metadata
        self.flavor = flavor
        self.old_flavor = old_flavor

    def obj_attr_is_set(self, name):
        return getattr(self, name, None) is not None


def limits(flavor):
    """Return the allowed Range of vCPUs and memory (MiB) of a flavor."""
    minimum = resources.minimum_resources(flavor)
    min_vcpus = minimum.vcpus or 1
    min_memory = minimum.memory_mb or min(CONF.xloud.min_memory_mb,
                                          flavor.memory_mb)
    return Limits(vcpus=Range(min_vcpus, flavor.vcpus),
                  memory_mb=Range(min_memory, flavor.memory_mb))


def _sysmeta(instance):
    if not instance.obj_attr_is_set('system_metadata'):
        instance.system_metadata = {}
    return instance.system_metadata


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _flavorid(flavor):
    flavorid = flavor.get('flavorid', None)
    return None if flavorid is None else str(flavorid)


def _valid(flavor, vcpus, memory_mb):
    if vcpus is None or memory_mb is None:
        return False
    lim = limits(flavor)
    return all(rng.minimum <= value <= rng.maximum
               for rng, value in ((lim.vcpus, vcpus),
                                  (lim.memory_mb, memory_mb)))


def _stored(instance, flavor, keys):
    sysmeta = _sysmeta(instance)
    vcpus_key, memory_key, flavor_key = keys
    if sysmeta.get(flavor_key) != _flavorid(flavor):
        return None
    vcpus = _int(sysmeta.get(vcpus_key))
    memory_mb = _int(sysmeta.get(memory_key))
    if not _valid(flavor, vcpus, memory_mb):
        return None
    return resources.Resources(vcpus=vcpus, memory_mb=memory_mb)


def _old_flavorid(instance):
    if not instance.obj_attr_is_set('old_flavor') or not instance.old_flavor:
        return None
    return _flavorid(instance.old_flavor)


def _stale(instance, flavor):
    """Whether persisted values must not be used (nor kept) for flavor.

    Values stored for another flavor are kept, unused, while a resize from
    that flavor may still be reverted; values stored for this flavor are
    stale when the server is being resized into it from another flavor
    (they are left from an earlier, confirmed resize).
    """
    stored = _sysmeta(instance).get(PERSISTED_FLAVORID)
    if stored is None:
        return False
    old = _old_flavorid(instance)
    if stored != _flavorid(flavor):
        return old != stored
    return old is not None and old != stored


def persisted(instance, flavor):
    """The persisted Resources if valid for this flavor, else None."""
    if _stale(instance, flavor):
        return None
    return _stored(instance, flavor, PERSISTED_KEYS)


def live(instance, flavor):
    """The live Resources recorded since the last boot, else None."""
    return _stored(instance, flavor, LIVE_KEYS)


def boot_resources(instance, flavor):
    """What the guest boots with; None in a field means the flavor's max.

    The persisted values when they are valid for this flavor, else the
    flavor's minimum.
    """
    return persisted(instance, flavor) or resources.minimum_resources(flavor)


def _resolve(flavor, amounts):
    return resources.Resources(
        vcpus=flavor.vcpus if amounts.vcpus is None else amounts.vcpus,
        memory_mb=(flavor.memory_mb if amounts.memory_mb is None
                   else amounts.memory_mb))


def current(instance, flavor=None):
    """The vCPUs and memory (MiB) the guest has now, as whole numbers."""
    flavor = flavor or instance.flavor
    return live(instance, flavor) or _resolve(
        flavor, boot_resources(instance, flavor))


def is_persisted(instance, flavor=None):
    """Whether the next boot gives the guest its current values."""
    flavor = flavor or instance.flavor
    return current(instance, flavor) == _resolve(
        flavor, boot_resources(instance, flavor))


def set_live(instance, flavor, vcpus=None, memory_mb=None):
    """Record what the running guest now has (None: unchanged)."""
    now = current(instance, flavor)
    sysmeta = _sysmeta(instance)
    sysmeta[LIVE_VCPUS] = str(now.vcpus if vcpus is None else vcpus)
    sysmeta[LIVE_MEMORY_MB] = str(
        now.memory_mb if memory_mb is None else memory_mb)
    sysmeta[LIVE_FLAVORID] = str(flavor.flavorid)


def set_persisted(instance, flavor, vcpus=None, memory_mb=None):
    """Record what the guest boots with (None: keep the boot value)."""
    boot = _resolve(flavor, boot_resources(instance, flavor))
    sysmeta = _sysmeta(instance)
    sysmeta[PERSISTED_VCPUS] = str(boot.vcpus if vcpus is None else vcpus)
    sysmeta[PERSISTED_MEMORY_MB] = str(
        boot.memory_mb if memory_mb is None else memory_mb)
    sysmeta[PERSISTED_FLAVORID] = str(flavor.flavorid)


def _drop(instance, keys):
    changed = False
    for key in keys:
        if key in _sysmeta(instance):
            del _sysmeta(instance)[key]
            changed = True
    return changed


def forget_live(instance):
    """Drop the live values (the guest is booted anew)."""
    return _drop(instance, LIVE_KEYS + (VCPUS_UNSETTLED,))


def forget_stale_persisted(instance, flavor):
    """Drop persisted values that no longer apply (see _stale)."""
    if _stale(instance, flavor):
        return _drop(instance, PERSISTED_KEYS)
    return False


def sequence(instance):
    return _int(_sysmeta(instance).get(SEQUENCE)) or 0


def start_adjustment(instance, request_id):
    """Bump the sequence and mark the request pending; return its number.

    The caller saves the instance.
    """
    number = sequence(instance) + 1
    sysmeta = _sysmeta(instance)
    sysmeta[SEQUENCE] = str(number)
    sysmeta[LAST_REQUEST_ID] = request_id
    sysmeta[LAST_STATUS] = STATUS_PENDING
    sysmeta.pop(LAST_MESSAGE, None)
    return number


def set_result(instance, request_id, status, message=None):
    """Record the result of a request if it is still the last one."""
    sysmeta = _sysmeta(instance)
    if sysmeta.get(LAST_REQUEST_ID) not in (None, request_id):
        return
    sysmeta[LAST_REQUEST_ID] = request_id
    sysmeta[LAST_STATUS] = status
    if message:
        sysmeta[LAST_MESSAGE] = message[:MAX_VALUE_LENGTH]
    else:
        sysmeta.pop(LAST_MESSAGE, None)


def mark_allocation_stale(instance, reason):
    """Record that the allocation does not match the guest, and why."""
    _sysmeta(instance)[ALLOCATION_STALE] = (
        reason or 'unknown')[:MAX_VALUE_LENGTH]


def clear_allocation_stale(instance):
    """Record that the allocation matches the guest again."""
    return _drop(instance, (ALLOCATION_STALE,))


def allocation_stale(instance):
    """Why the allocation does not match the guest, or None."""
    return _sysmeta(instance).get(ALLOCATION_STALE)


def last(instance):
    sysmeta = _sysmeta(instance)
    return Last(request_id=sysmeta.get(LAST_REQUEST_ID),
                status=sysmeta.get(LAST_STATUS),
                message=sysmeta.get(LAST_MESSAGE))


def vcpus_unsettled(instance):
    """Whether libvirt lost count of the guest's vCPUs since its boot."""
    return VCPUS_UNSETTLED in _sysmeta(instance)


def mark_vcpus_unsettled(instance, counted):
    """Refuse vCPU changes until the next boot; counted: libvirt's count."""
    _sysmeta(instance)[VCPUS_UNSETTLED] = (
        'unknown' if counted is None else str(counted))
