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
  could not be set to what the guest has, after an adjustment or a boot;
  whoever sets it later (the next adjustment, the next boot, the drift
  repair) clears it;
* vcpus_unsettled: libvirt lost count of the guest's vCPUs (a timed-out
  unplug); vCPU changes are refused until the domain is defined anew,
  which drops it with the live values;
* requested: the vCPUs and memory last asked for, each kept until a
  request asks for it again;
* observed: what the guest itself showed when nova-compute last looked
  (its online vCPUs through the QEMU guest agent, its memory through the
  balloon statistics), with the time and the source, or why it could not
  be seen; dropped with the live values, since it describes one boot.

This module reads and changes a dict and nothing else; nova_xloud.store
writes the changes atomically.
"""

import collections
import json

from oslo_log import log as logging
from oslo_utils import strutils
from oslo_utils import timeutils

from nova import objects

from nova_xloud import conf
from nova_xloud.virt import resources

CONF = conf.CONF
LOG = logging.getLogger(__name__)

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
REQUESTED_VCPUS = 'xloud_requested_vcpus'
REQUESTED_MEMORY_MB = 'xloud_requested_memory_mb'
OBSERVED_VCPUS = 'xloud_observed_vcpus'
OBSERVED_MEMORY = 'xloud_observed_memory'

PERSISTED_KEYS = (PERSISTED_VCPUS, PERSISTED_MEMORY_MB, PERSISTED_FLAVORID)
LIVE_KEYS = (LIVE_VCPUS, LIVE_MEMORY_MB, LIVE_FLAVORID)
OBSERVED_KEYS = (OBSERVED_VCPUS, OBSERVED_MEMORY)

SOURCE_GUEST_AGENT = 'guest-agent'
SOURCE_BALLOON = 'balloon-statistics'
NOT_OBSERVED = 'not observed since the guest booted'

STATUS_PENDING = 'pending'
STATUS_SUCCESS = 'success'
STATUS_ERROR = 'error'

# system_metadata values are at most 255 characters.
MAX_VALUE_LENGTH = 255

Range = collections.namedtuple('Range', ['minimum', 'maximum'])
Limits = collections.namedtuple('Limits', ['vcpus', 'memory_mb'])
Last = collections.namedtuple('Last', ['request_id', 'status', 'message'])
# What the guest showed: online vCPUs; its memory (MiB) as the balloon
# holds it (actual), as the guest counts it (available) and what it can
# still give without swapping (usable). None where not seen, and why.
ObservedVcpus = collections.namedtuple(
    'ObservedVcpus', ['online', 'source', 'observed_at', 'reason'])
ObservedMemory = collections.namedtuple(
    'ObservedMemory', ['actual_mb', 'available_mb', 'usable_mb', 'source',
                       'observed_at', 'reason'])


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
    """Drop the live and observed values (the guest is booted anew)."""
    return _drop(instance, LIVE_KEYS + OBSERVED_KEYS + (VCPUS_UNSETTLED,))


def forget_stale_persisted(instance, flavor):
    """Drop persisted values that no longer apply (see _stale)."""
    if _stale(instance, flavor):
        return _drop(instance, PERSISTED_KEYS)
    return False


def sequence(instance):
    return _int(_sysmeta(instance).get(SEQUENCE)) or 0


def start_adjustment(instance, request_id, vcpus=None, memory_mb=None):
    """Bump the sequence and mark the request pending; return its number.

    vcpus and memory_mb (None: not asked) become the last requested ones.
    """
    number = sequence(instance) + 1
    sysmeta = _sysmeta(instance)
    for key, value in ((REQUESTED_VCPUS, vcpus),
                       (REQUESTED_MEMORY_MB, memory_mb)):
        if value is not None:
            sysmeta[key] = str(value)
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


def has_guest_agent(instance):
    """Whether the server's image asks for the QEMU guest agent.

    Read from the image properties Nova keeps in system_metadata.
    """
    try:
        image_meta = objects.ImageMeta.from_instance(instance)
        wanted = image_meta.properties.get('hw_qemu_guest_agent', False)
    except Exception as e:
        LOG.debug('Cannot read the image properties of %s: %s',
                  instance.uuid, e)
        return False
    return strutils.bool_from_string(wanted)


def requested(instance):
    """The vCPUs and memory (MiB) last asked for; None if never."""
    sysmeta = _sysmeta(instance)
    return resources.Resources(
        vcpus=_int(sysmeta.get(REQUESTED_VCPUS)),
        memory_mb=_int(sysmeta.get(REQUESTED_MEMORY_MB)))


def _now():
    return timeutils.utcnow().strftime('%Y-%m-%dT%H:%M:%SZ')


def _encode(values):
    """JSON of values that fits a system_metadata value.

    Only a reason can be long; it is cut to fit.
    """
    text = json.dumps(values, separators=(',', ':'), sort_keys=True)
    excess = len(text) - MAX_VALUE_LENGTH
    if excess > 0 and values.get('reason'):
        values = dict(values, reason=values['reason'][:-excess - 3] + '...')
        text = json.dumps(values, separators=(',', ':'), sort_keys=True)
    return text


def _decode(text):
    try:
        values = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def observe_vcpus(online=None, reason=None, observed_at=None):
    """An ObservedVcpus from the guest agent, or why there is none."""
    return ObservedVcpus(
        online=online,
        source=SOURCE_GUEST_AGENT if online is not None else None,
        observed_at=observed_at or _now(),
        reason=None if online is not None else (reason or 'unknown'))


def observe_memory(actual_mb=None, available_mb=None, usable_mb=None,
                   reason=None, observed_at=None):
    """An ObservedMemory from the balloon statistics, or why there is none.

    actual_mb alone is an observation too: a guest that reports no
    statistics still shows what its balloon holds.
    """
    seen = actual_mb is not None
    return ObservedMemory(
        actual_mb=actual_mb, available_mb=available_mb, usable_mb=usable_mb,
        source=SOURCE_BALLOON if seen else None,
        observed_at=observed_at or _now(),
        reason=reason if (reason or seen) else 'unknown')


def set_observed(instance, vcpus=None, memory=None):
    """Record an ObservedVcpus and/or ObservedMemory (None: unchanged)."""
    sysmeta = _sysmeta(instance)
    for key, observation in ((OBSERVED_VCPUS, vcpus),
                             (OBSERVED_MEMORY, memory)):
        if observation is not None:
            sysmeta[key] = _encode(
                {name: value for name, value in
                 observation._asdict().items() if value is not None})


def _observed(instance, key, kind):
    values = _decode(_sysmeta(instance).get(key))
    if not values:
        return kind(**dict(dict.fromkeys(kind._fields),
                           reason=NOT_OBSERVED))
    return kind(**{name: values.get(name) for name in kind._fields})


def observed_vcpus(instance):
    """The last ObservedVcpus (reason NOT_OBSERVED when there is none)."""
    return _observed(instance, OBSERVED_VCPUS, ObservedVcpus)


def observed_memory(instance):
    """The last ObservedMemory (reason NOT_OBSERVED when there is none)."""
    return _observed(instance, OBSERVED_MEMORY, ObservedMemory)


def shrink_refusal(memory, target_mb, margin_mb):
    """Why shrinking to target_mb is unsafe for the guest, or None.

    :param memory: an ObservedMemory. What the guest uses is what its
        balloon holds less what it could give without swapping (usable),
        which also counts the memory its kernel keeps for itself; but
        usable and available come from the guest's last report while
        actual is read live, so after a balloon change the report may be
        older: what it counted then (available) less usable is taken when
        that is more. The guest keeps that much plus margin_mb. Without
        usable the shrink cannot be shown safe.
    """
    if memory.actual_mb is None or memory.usable_mb is None:
        return ('the guest reports no memory use (balloon statistics): %s'
                % (memory.reason or 'no usable memory reported'))
    in_use = max(memory.actual_mb - memory.usable_mb,
                 (memory.available_mb or 0) - memory.usable_mb, 0)
    if target_mb >= in_use + margin_mb:
        return None
    return ('the guest uses %d MiB of its %d MiB (%d MiB usable); %d MiB '
            'leaves less than the %d MiB margin: the smallest safe target '
            'is %d MiB' % (in_use, memory.actual_mb, memory.usable_mb,
                           target_mb, margin_mb, in_use + margin_mb))
