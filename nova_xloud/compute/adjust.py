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

"""Compute side of the live adjust API.

Adjustments of one server are serialised by a lock keyed by its uuid, so
they apply in the order they get the lock; one superseded by a newer
request (a higher sequence number stored by the API) is dropped, still
finishing its instance action event, so the last request wins.

The records are written through nova_xloud.store, once when the guest has
been changed (what it has, what it boots with and the result together),
and once more only when the placement allocation cannot be set to what the
guest has: then the result is an error, an instance fault says why and the
server is marked (records.ALLOCATION_STALE) for the drift repair.
"""

import sys

from oslo_concurrency import lockutils
from oslo_log import log as logging

from nova.compute import utils as compute_utils
from nova.compute import vm_states
from nova import exception
from nova import objects

from nova_xloud.compute import placement
from nova_xloud.compute import rpcapi
from nova_xloud import conf
from nova_xloud import notifications
from nova_xloud import records
from nova_xloud import store
from nova_xloud.virt import guest_view
from nova_xloud.virt import libvirt_adjust

CONF = conf.CONF
LOG = logging.getLogger(__name__)

ACTION = 'xloud-adjust'
EVENT = 'compute_xloud_adjust'
AdjustFailed = libvirt_adjust.AdjustFailed
UNSETTLED_MESSAGE = ('libvirt lost count of the vCPUs of this server after '
                     'a vCPU unplug timed out: vCPU changes are refused '
                     'until it is hard rebooted or stopped and started')
ONLINE_THEMSELVES = ('the guest must bring the new vCPUs online itself '
                     '(for example with a udev rule): without the QEMU '
                     'guest agent nova-xloud cannot see whether it did')


class Superseded(exception.NovaException):
    msg_fmt = ("Not applied: superseded by a newer adjustment "
               "(%(request_id)s)")


def _message(error):
    if isinstance(error, exception.NovaException):
        return error.format_message()
    return 'Unexpected error: %s' % error


def _finish(view, request_id, changes, status, message=None):
    """The records of one finished adjustment; returns the sequence."""
    for change, flavor, amounts in changes:
        change(view, flavor, **amounts)
    records.set_result(view, request_id, status, message)
    return records.sequence(view)


def _allocation_failed(view, request_id, message):
    records.mark_allocation_stale(view, message)
    records.set_result(view, request_id, records.STATUS_ERROR, message)


def reconcile_allocation(context, instance, client=None, held=None):
    """Set the allocation to what the guest has; clear the stale mark.

    For the drift repair too: ``instance`` needs its flavor and
    system_metadata (as stored; store.update keeps them so).

    :param held: the placement.Allocation read earlier in this adjustment;
        placement is not asked again when it equals what the guest has
    :raises: placement.PlacementError (the mark stays)
    """
    now = records.current(instance)
    if held is None or not _equals(held, now):
        placement.set_amounts(context, instance, vcpus=now.vcpus,
                              memory_mb=now.memory_mb, client=client)
    if records.allocation_stale(instance) is not None:
        store.update(context, instance, records.clear_allocation_stale)


class Adjuster(object):

    def __init__(self, manager):
        self.manager = manager

    @property
    def driver(self):
        return self.manager.driver

    def describe_host(self, context):
        libvirt = libvirt_adjust.is_libvirt(self.driver)
        return {
            'version': rpcapi.VERSION,
            'driver': type(self.driver).__name__,
            'live_vcpus': libvirt,
            'memory_balloon': libvirt and libvirt_adjust.has_memory_balloon(),
        }

    def allocation_after_boot(self, context, instance, now):
        """The allocation follows a boot that changed what the guest has.

        The listener nova-compute gives libvirt_adjust.on_boot_change.

        :raises: placement.PlacementError (the allocation was not set)
        """
        placement.set_amounts(context, instance, vcpus=now.vcpus,
                              memory_mb=now.memory_mb,
                              client=self.manager.reportclient)
        try:
            if records.allocation_stale(instance) is not None:
                store.update(context, instance,
                             records.clear_allocation_stale)
        except Exception as e:
            # The allocation is right: the drift repair clears the mark.
            LOG.warning('Could not clear the stale allocation mark of '
                        '%(uuid)s: %(error)s',
                        {'uuid': instance.uuid, 'error': e})

    def guest_memory(self, context, instance):
        """What the guest's balloon statistics say, as a dict."""
        observation = guest_view.observe_memory(self.driver, instance)
        return dict(observation._asdict())

    def adjust(self, context, instance, vcpus, memory_mb, persist,
               sequence, force=False):
        with lockutils.lock('xloud-adjust-%s' % instance.uuid):
            try:
                self._adjust_locked(context, instance.uuid, vcpus, memory_mb,
                                    persist, sequence, force)
            except Exception:
                # The event and the records already say what happened.
                LOG.info('Adjustment %(request)s of %(uuid)s failed',
                         {'request': context.request_id,
                          'uuid': instance.uuid}, exc_info=True)

    def _load(self, context, uuid):
        return objects.Instance.get_by_uuid(
            context, uuid, expected_attrs=['system_metadata', 'flavor'])

    def _adjust_locked(self, context, uuid, vcpus, memory_mb, persist,
                       sequence, force):
        with compute_utils.EventReporter(context, EVENT, self.manager.host,
                                         uuid, graceful_exit=True):
            instance = self._load(context, uuid)
            if sequence < records.sequence(instance):
                raise Superseded(
                    request_id=records.last(instance).request_id)
            old = records.current(instance)
            self._notify(context, notifications.START, instance, old,
                         old._replace(vcpus=vcpus or old.vcpus,
                                      memory_mb=memory_mb or old.memory_mb),
                         persist)
            changes = []
            held = []
            notes = []
            try:
                self._apply(context, instance, vcpus, memory_mb, persist,
                            force, changes, held, notes)
            except Exception as e:
                self._observe(instance, changes)
                message = _message(e)
                compute_utils.add_instance_fault_from_exc(
                    context, instance, e, sys.exc_info(),
                    fault_message=message)
                newest = store.update(context, instance, _finish,
                                      context.request_id, changes,
                                      records.STATUS_ERROR, message)
                self._notify(context, notifications.ERROR, instance, old,
                             records.current(instance), persist, message)
                self._reconcile_allocation(context, instance, sequence,
                                           newest, held)
                raise AdjustFailed(reason=message)
            self._observe(instance, changes)
            newest = store.update(context, instance, _finish,
                                  context.request_id, changes,
                                  records.STATUS_SUCCESS,
                                  '; '.join(notes) or None)
            try:
                self._reconcile_allocation(context, instance, sequence,
                                           newest, held)
            except AdjustFailed as e:
                self._notify(context, notifications.ERROR, instance, old,
                             records.current(instance), persist,
                             e.format_message())
                raise
            self._notify(context, notifications.END, instance, old,
                         records.current(instance), persist)

    def _observe(self, instance, changes):
        """Append to changes what the running guest shows it has."""
        if instance.vm_state != vm_states.ACTIVE or (
                not libvirt_adjust.is_libvirt(self.driver)):
            return
        changes.append((_set_observed, None, {
            'vcpus': guest_view.observe_vcpus(self.driver, instance),
            'memory': guest_view.observe_memory(self.driver, instance)}))

    def _notify(self, context, phase, instance, old, new, persist,
                message=None):
        try:
            notifications.notify(context, self.manager.host, phase, instance,
                                 old, new, persist, message)
        except Exception:
            # Monitoring must not change what happens to the guest.
            LOG.exception('Could not send the %s notification of the '
                          'adjustment of %s', phase, instance.uuid)

    def _apply(self, context, instance, vcpus, memory_mb, persist, force,
               changes, held, notes):
        """Change the guest; append to changes the records to write.

        Appends to held the placement.Allocation read before an increase,
        and to notes what the result must tell beside success.
        """
        flavor = instance.flavor
        self._check_range(flavor, vcpus, memory_mb)
        if instance.task_state is not None:
            # Started after the API accepted this adjustment.
            raise AdjustFailed(reason='the server has a task in progress: '
                               '%s' % instance.task_state)
        now = records.current(instance, flavor)
        if increases(now, vcpus, memory_mb):
            # The API raised the allocation already; make sure it still
            # covers the increase (another adjustment may have lowered it
            # meanwhile) before the guest is touched.
            try:
                held.append(placement.set_amounts(
                    context, instance, vcpus=vcpus, memory_mb=memory_mb,
                    only_increase=True, client=self.manager.reportclient))
            except placement.PlacementError as e:
                raise AdjustFailed(reason=e.format_message())
        if instance.vm_state == vm_states.STOPPED:
            if not persist:
                raise AdjustFailed(reason='the server is stopped; only a '
                                   'persisted adjustment applies to it')
            changes.append((records.set_persisted, flavor,
                            {'vcpus': vcpus, 'memory_mb': memory_mb}))
            changes.append((_forget_live, flavor, {}))
            return
        if instance.vm_state != vm_states.ACTIVE:
            raise AdjustFailed(reason='the server is %s' % instance.vm_state)
        if not libvirt_adjust.is_libvirt(self.driver):
            raise AdjustFailed(reason='the compute driver %s cannot adjust '
                               'a running server' %
                               type(self.driver).__name__)
        if vcpus is not None:
            self._apply_vcpus(instance, now.vcpus, vcpus, persist, changes,
                              notes)
        if memory_mb is not None:
            self._apply_memory(instance, now.memory_mb, memory_mb, persist,
                               force, changes)

    def _apply_vcpus(self, instance, before, vcpus, persist, changes,
                     notes):
        flavor = instance.flavor
        if records.vcpus_unsettled(instance):
            raise AdjustFailed(reason=UNSETTLED_MESSAGE)
        agent = records.has_guest_agent(instance)
        decrease = vcpus < before
        if decrease and agent:
            # The guest lets go of them first, so that the unplug does not
            # pull vCPUs it still runs tasks on.
            guest_view.take_offline(self.driver, instance, vcpus)
        try:
            actual = libvirt_adjust.set_vcpus(
                self.driver, instance, vcpus, decrease=decrease)
        except libvirt_adjust.VcpusUnsettled as e:
            _record_unsettled(changes, flavor, persist, vcpus, e)
            raise
        except AdjustFailed:
            if decrease and agent:
                self._online_again(instance, before)
            raise
        _record(changes, flavor, persist and actual == vcpus, vcpus=actual)
        if actual != vcpus:
            raise AdjustFailed(
                reason='the guest has %d vCPUs, not %d: it did not '
                       'release them all' % (actual, vcpus))
        if not agent:
            if vcpus > before:
                notes.append(ONLINE_THEMSELVES)
            return
        online = (guest_view.bring_online(self.driver, instance, vcpus)
                  if vcpus > before else
                  guest_view.online_vcpus(self.driver, instance))
        if online != vcpus:
            raise AdjustFailed(
                reason='libvirt gave the guest %d vCPUs but the guest has '
                       '%d online (QEMU guest agent)' % (vcpus, online))

    def _online_again(self, instance, count):
        """Undo take_offline after the unplug failed: the vCPUs stay."""
        try:
            guest_view.bring_online(self.driver, instance, count)
        except AdjustFailed as e:
            LOG.warning('Could not bring the vCPUs of %(uuid)s back online '
                        'after a failed unplug: %(error)s',
                        {'uuid': instance.uuid,
                         'error': e.format_message()})

    def _apply_memory(self, instance, before, memory_mb, persist, force,
                      changes):
        flavor = instance.flavor
        shrink = memory_mb < before
        if shrink and not force:
            refusal = records.shrink_refusal(
                guest_view.observe_memory(self.driver, instance), memory_mb,
                CONF.xloud.memory_shrink_margin_mb)
            if refusal:
                raise AdjustFailed(
                    reason='not lowered to %d MiB: %s; "force": true lowers '
                           'it anyway' % (memory_mb, refusal))
        libvirt_adjust.set_memory(self.driver, instance, memory_mb)
        # Wait for the guest either way, so that what is recorded (and
        # observed) is what it has.
        actual = guest_view.wait_balloon(self.driver, instance, memory_mb,
                                         rising=not shrink)
        if actual is None or actual == memory_mb or (
                (actual < memory_mb) == shrink):
            _record(changes, flavor, persist, memory_mb=memory_mb)
            return
        _record(changes, flavor, False, memory_mb=actual)
        raise AdjustFailed(
            reason='the guest has %d MiB, not %d MiB, after %d s: its '
                   'balloon did not reach the target' % (
                       actual, memory_mb, CONF.xloud.balloon_timeout))

    @staticmethod
    def _check_range(flavor, vcpus, memory_mb):
        # The flavor may have changed since the API checked.
        lim = records.limits(flavor)
        for name, value, rng in (('current_vcpus', vcpus, lim.vcpus),
                                 ('current_memory_mb', memory_mb,
                                  lim.memory_mb)):
            if value is not None and not (
                    rng.minimum <= value <= rng.maximum):
                raise AdjustFailed(
                    reason='%s=%d is out of range %d-%d for flavor %s' % (
                        name, value, rng.minimum, rng.maximum,
                        flavor.flavorid))

    def _reconcile_allocation(self, context, instance, sequence, newest,
                              held):
        """Make the allocation equal what the guest now has.

        Left alone while a newer adjustment is pending (``newest``, read
        in the same transaction as the result): the API raised the
        allocation for it and that adjustment reconciles it. Placement is
        not asked again when the allocation read before an increase
        (``held``) already equals what the guest ended with, the usual
        increase. A failure is recorded (result, fault, stale mark) and
        raised as AdjustFailed.
        """
        if newest > sequence:
            return
        try:
            reconcile_allocation(context, instance,
                                 client=self.manager.reportclient,
                                 held=held[0] if held else None)
        except placement.PlacementError as e:
            message = e.format_message()
            LOG.warning('Could not set the placement allocation of %(uuid)s '
                        'to what its guest has: %(error)s',
                        {'uuid': instance.uuid, 'error': message})
            compute_utils.add_instance_fault_from_exc(
                context, instance, e, sys.exc_info(), fault_message=message)
            store.update(context, instance, _allocation_failed,
                         context.request_id, message)
            raise AdjustFailed(reason=message)


def _equals(allocation, now):
    return (allocation.vcpus, allocation.memory_mb) == (
        now.vcpus, now.memory_mb)


def increases(now, vcpus=None, memory_mb=None):
    """Whether vcpus or memory_mb (None: unchanged) is above now's."""
    return ((vcpus or 0) > now.vcpus) or ((memory_mb or 0) > now.memory_mb)


def _set_observed(view, flavor, vcpus, memory):
    records.set_observed(view, vcpus=vcpus, memory=memory)


def _forget_live(view, flavor):
    records.forget_live(view)


def _record(changes, flavor, persist, **amounts):
    changes.append((records.set_live, flavor, amounts))
    if persist:
        changes.append((records.set_persisted, flavor, amounts))


def _mark_vcpus_unsettled(view, flavor, counted):
    records.mark_vcpus_unsettled(view, counted)


def _record_unsettled(changes, flavor, persist, vcpus, error):
    """Record what QEMU says the guest has, and refuse vCPU changes."""
    present = error.kwargs['present']
    if present is not None:
        _record(changes, flavor, persist and present == vcpus,
                vcpus=present)
    changes.append((_mark_vcpus_unsettled, flavor,
                    {'counted': error.kwargs['counted']}))
