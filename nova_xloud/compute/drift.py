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

"""Drift repair: the records and the allocation follow the guest.

A periodic task of nova-compute (``[xloud] repair_drift``, every
``drift_repair_interval`` seconds and once when the periodic tasks start)
compares, for each adjusted server on this host, what libvirt reports live
with the server's live adjust records and the VCPU / MEMORY_MB of its
allocation on the compute node provider, and sets both to what the guest
has. It never changes the guest. Servers with a task in progress, not
ACTIVE, with an adjustment pending or being applied are left for the next
run; an adjustment pending for longer than ``lost_adjustment_timeout`` is
ended in error as lost, and its server checked. A drift is repaired when
two runs in a row see the guest the same.
"""

import collections
import sys

import os_resource_classes as orc
from oslo_concurrency import lockutils
from oslo_log import log as logging
from oslo_service import periodic_task
from oslo_utils import timeutils

from nova.compute import utils as compute_utils
from nova.compute import vm_states
from nova import exception
from nova import objects

from nova_xloud.compute import placement
from nova_xloud import conf
from nova_xloud import notifications
from nova_xloud import records
from nova_xloud import store
from nova_xloud.virt import guest_view
from nova_xloud.virt import libvirt_adjust
from nova_xloud.virt import resources

CONF = conf.CONF
LOG = logging.getLogger(__name__)

TASK_NAME = 'xloud_repair_drift'
# Sent as xloud_adjust.update (no phase), apart from the .start, .end and
# .error of adjustments.
NOTIFICATION_PHASE = None

Plan = collections.namedtuple(
    'Plan', ['guest', 'recorded', 'allocated', 'records', 'allocation',
             'ignored'])
Plan.__doc__ = """What a drift repair changes.

``records``: the Resources to record as the server's live values, or None.
``allocation``: the Resources to set in the allocation (None in a field:
unchanged), or None. ``ignored``: names of the guest's values outside the
flavor's range, which no record can hold and which are left as they are.
"""

LOST_MESSAGE = ('nova-compute did not finish this adjustment within %d s;'
                ' drift repair took it as lost and set the records and the'
                ' allocation to what the guest has')

_registered = set()

# What each server's guest had at the last run that found it drifted, by
# server uuid. A drift is repaired only when the next run sees the guest
# the same: a just-booted guest's balloon is still inflating to its target
# (libvirt reports the balloon's actual size, the flavor's maximum at
# first), and a repair then would record memory the guest is giving back.
_seen_drifted = {}


def plan_repair(guest, recorded, allocated, limits, claim_minimum=True):
    """Decide what a repair changes; every argument is read only.

    :param guest: Resources the guest has (libvirt, live)
    :param recorded: Resources the records say it has (records.current)
    :param allocated: Resources of the allocation (None in a field, or
        None: nothing allocated on a compute node)
    :param limits: records.Limits of the server's flavor
    :param claim_minimum: [xloud] claim_minimum_in_placement; when False
        the allocation may hold more than the guest (the flavor's full
        amounts) and is only raised to what the guest has
    """
    target = {}
    ignored = []
    for field in resources.Resources._fields:
        value = getattr(guest, field)
        rng = getattr(limits, field)
        if rng.minimum <= value <= rng.maximum:
            target[field] = value
        else:
            ignored.append(field)
            target[field] = getattr(recorded, field)
    target = resources.Resources(**target)
    new_records = target if target != recorded else None
    return Plan(guest=guest, recorded=recorded, allocated=allocated,
                records=new_records,
                allocation=_allocation_change(target, allocated,
                                              claim_minimum),
                ignored=tuple(ignored))


def _allocation_change(target, allocated, claim_minimum):
    if allocated is None:
        return None
    change = {}
    for field in resources.Resources._fields:
        have = getattr(allocated, field)
        want = getattr(target, field)
        if have is None or have == want:
            change[field] = None
        elif claim_minimum or have < want:
            change[field] = want
        else:
            change[field] = None
    change = resources.Resources(**change)
    return None if change == resources.NO_RESOURCES else change


def is_adjusted(instance):
    """Whether the flavor has the minimum specs or the server records."""
    specs = instance.flavor.get('extra_specs', {}) or {}
    if resources.MINIMUM_CPU in specs or resources.MINIMUM_MEMORY in specs:
        return True
    return any(key.startswith(records.PREFIX)
               for key in instance.system_metadata)


def skip_reason(instance, host, lost=False):
    """Why the server is not checked now, or None to check it.

    :param lost: its pending adjustment, if any, is taken as lost
    """
    if instance.host != host:
        return 'it is not on this host'
    if instance.vm_state != vm_states.ACTIVE:
        return 'it is %s' % instance.vm_state
    if instance.task_state is not None:
        return 'it has a task in progress: %s' % instance.task_state
    if records.last(instance).status == records.STATUS_PENDING and not lost:
        return 'an adjustment is pending'
    if not is_adjusted(instance):
        return 'it is not adjusted'
    return None


def write_records(context, instance, flavor, amounts):
    """Record amounts as what the running guest has (one atomic write)."""
    store.update(context, instance, records.set_live, flavor,
                 vcpus=amounts.vcpus, memory_mb=amounts.memory_mb)


def write_allocation(context, instance, amounts, client):
    """Set VCPU / MEMORY_MB of the allocation (None in a field: unchanged).

    Clears the mark of an allocation left stale by an adjustment or a
    boot.

    :raises: placement.PlacementError
    """
    placement.set_amounts(context, instance, vcpus=amounts.vcpus,
                          memory_mb=amounts.memory_mb, client=client)
    clear_stale_mark(context, instance)


def clear_stale_mark(context, instance):
    if records.allocation_stale(instance):
        store.update(context, instance, records.clear_allocation_stale)


def read_allocation(context, instance, client):
    """VCPU / MEMORY_MB of the allocation on its compute node, or None."""
    allocations = client.get_allocs_for_consumer(
        context, instance.uuid).get('allocations') or {}
    if not allocations:
        return None
    amounts = allocations.get(placement.own_provider(
        context, instance, allocations), {}).get('resources', {})
    if orc.VCPU not in amounts and orc.MEMORY_MB not in amounts:
        return None
    return resources.Resources(vcpus=amounts.get(orc.VCPU),
                               memory_mb=amounts.get(orc.MEMORY_MB))


def pending_is_lost(context, instance):
    """Whether the pending adjustment is older than the lost timeout.

    Its age is its instance action's; an adjustment without one (records
    written by hand) is never taken as lost.
    """
    timeout = CONF.xloud.lost_adjustment_timeout
    request_id = records.last(instance).request_id
    if not timeout or not request_id:
        return False
    action = objects.InstanceAction.get_by_request_id(
        context, instance.uuid, request_id)
    # Nova's object times are aware; timeutils compares naive UTC.
    return bool(action and action.start_time and timeutils.is_older_than(
        timeutils.normalize_time(action.start_time), timeout))


def end_lost(context, instance):
    """End the pending adjustment in error: nova-compute never did."""
    request_id = records.last(instance).request_id
    message = LOST_MESSAGE % CONF.xloud.lost_adjustment_timeout
    store.update(context, instance, records.set_result, request_id,
                 records.STATUS_ERROR, message)
    LOG.warning('Server %(uuid)s: adjustment %(request)s taken as lost: '
                '%(message)s', {'uuid': instance.uuid,
                                'request': request_id, 'message': message})


def _describe(amounts):
    if amounts is None:
        return 'nothing'
    return ', '.join('%s %s' % (value, unit) for value, unit in (
        (amounts.vcpus, 'vCPUs'), (amounts.memory_mb, 'MiB'))
        if value is not None)


class DriftRepairer(object):

    def __init__(self, manager):
        self.manager = manager

    @property
    def driver(self):
        return self.manager.driver

    def run(self, context):
        """Check every adjusted server on this host once."""
        if not libvirt_adjust.is_libvirt(self.driver):
            return
        instances = objects.InstanceList.get_by_host(
            context, self.manager.host,
            expected_attrs=['system_metadata', 'flavor'])
        # Forget what was seen of servers that left this host.
        for uuid in set(_seen_drifted) - {i.uuid for i in instances}:
            _seen_drifted.pop(uuid, None)
        for instance in instances:
            if skip_reason(instance, self.manager.host, lost=True):
                continue
            try:
                self.check(context, instance.uuid)
            except Exception:
                # One server must not keep the others from being checked.
                LOG.exception('Could not check %s for drift', instance.uuid)

    def check(self, context, uuid):
        """Repair one server unless an adjustment holds it; the Plan."""
        try:
            with lockutils.lock('xloud-adjust-%s' % uuid, blocking=False):
                return self._check_locked(context, uuid)
        except lockutils.AcquireLockFailedException:
            LOG.debug('Not checking %s for drift: an adjustment is being '
                      'applied', uuid)
            return None

    def _check_locked(self, context, uuid):
        try:
            instance = objects.Instance.get_by_uuid(
                context, uuid, expected_attrs=['system_metadata', 'flavor'])
        except exception.InstanceNotFound:
            return None
        pending = records.last(instance).status == records.STATUS_PENDING
        lost = pending and pending_is_lost(context, instance)
        reason = skip_reason(instance, self.manager.host, lost=lost)
        if reason:
            LOG.debug('Not checking %s for drift: %s', uuid, reason)
            return None
        if lost:
            end_lost(context, instance)
        try:
            guest = libvirt_adjust.live_resources(self.driver, instance)
        except exception.InstanceNotFound:
            return None
        except libvirt_adjust.AdjustFailed as e:
            LOG.warning('Not checking %(uuid)s for drift: %(error)s',
                        {'uuid': uuid, 'error': e.format_message()})
            return None
        self._record_observation(context, instance)
        flavor = instance.flavor
        recorded = records.current(instance, flavor)
        if guest.vcpus is None:
            # libvirt lost count and QEMU cannot tell: keep the records.
            guest = guest._replace(vcpus=recorded.vcpus)
        plan = plan_repair(
            guest, recorded,
            read_allocation(context, instance, self.manager.reportclient),
            records.limits(flavor),
            claim_minimum=CONF.xloud.claim_minimum_in_placement)
        if plan.ignored:
            LOG.warning('Server %(uuid)s has %(guest)s, outside the range '
                        'of flavor %(flavor)s for %(fields)s: not recorded',
                        {'uuid': uuid, 'guest': _describe(guest),
                         'flavor': flavor.flavorid,
                         'fields': ', '.join(plan.ignored)})
        if plan.records is None and plan.allocation is None:
            _seen_drifted.pop(uuid, None)
            # The allocation is right (again): an earlier failure is over.
            clear_stale_mark(context, instance)
            return plan
        if _seen_drifted.get(uuid) != guest:
            _seen_drifted[uuid] = guest
            LOG.info('Server %(uuid)s: the guest has %(guest)s, not what '
                     'its records or allocation say; repaired if the next '
                     'drift check sees the same', {
                         'uuid': uuid, 'guest': _describe(guest)})
            return None
        del _seen_drifted[uuid]
        self._repair(context, instance, plan)
        return plan

    def _record_observation(self, context, instance):
        """Store what the guest itself shows, for GET (no RPC there)."""
        try:
            store.update(context, instance, records.set_observed,
                         vcpus=guest_view.observe_vcpus(self.driver,
                                                        instance),
                         memory=guest_view.observe_memory(self.driver,
                                                          instance))
        except Exception as e:
            LOG.warning('Could not store what the guest of %(uuid)s shows: '
                        '%(error)s', {'uuid': instance.uuid, 'error': e})

    def _repair(self, context, instance, plan):
        flavor = instance.flavor
        done = []
        failure = None
        if plan.records is not None:
            write_records(context, instance, flavor, plan.records)
            done.append('records %s -> %s' % (_describe(plan.recorded),
                                              _describe(plan.records)))
        if plan.allocation is not None:
            try:
                write_allocation(context, instance, plan.allocation,
                                 self.manager.reportclient)
                done.append('allocation %s -> %s' % (
                    _describe(plan.allocated), _describe(plan.allocation)))
            except placement.PlacementError as e:
                failure = e.format_message()
                compute_utils.add_instance_fault_from_exc(
                    context, instance, e, sys.exc_info(),
                    fault_message=failure)
        message = 'Drift repair: the guest has %s; %s' % (
            _describe(plan.guest), '; '.join(done) or 'nothing changed')
        if failure:
            message += '; allocation not repaired: %s' % failure
            LOG.error('Server %(uuid)s: %(message)s',
                      {'uuid': instance.uuid, 'message': message})
        else:
            LOG.warning('Server %(uuid)s: %(message)s',
                        {'uuid': instance.uuid, 'message': message})
        self._notify(context, instance, plan, message)

    def _notify(self, context, instance, plan, message):
        new = records.current(instance, instance.flavor)
        try:
            notifications.notify(
                context, self.manager.host, NOTIFICATION_PHASE, instance,
                plan.recorded, new, records.is_persisted(instance), message)
        except Exception:
            LOG.exception('Could not send the drift repair notification of '
                          '%s', instance.uuid)


def _repair_drift(manager, context):
    if CONF.xloud.repair_drift:
        DriftRepairer(manager).run(context)


def _periodic_task():
    @periodic_task.periodic_task(
        spacing=CONF.xloud.drift_repair_interval, run_immediately=True,
        name=TASK_NAME)
    def xloud_repair_drift(manager, context):
        _repair_drift(manager, context)
    return xloud_repair_drift


def register_periodic_task(manager):
    """Add the drift repair to the compute manager's periodic tasks.

    oslo.service keeps periodic tasks per class and calls each with the
    manager it runs for, so the task is added once per manager class.
    ``run_immediately`` makes the first run when the periodic tasks start.

    :returns: whether it was added now
    """
    if not CONF.xloud.repair_drift or type(manager) in _registered:
        return False
    _registered.add(type(manager))
    manager.add_periodic_task(_periodic_task())
    return True
