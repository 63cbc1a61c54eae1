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
from nova_xloud import notifications
from nova_xloud import records
from nova_xloud.virt import libvirt_adjust

LOG = logging.getLogger(__name__)

ACTION = 'xloud-adjust'
EVENT = 'compute_xloud_adjust'
AdjustFailed = libvirt_adjust.AdjustFailed
UNSETTLED_MESSAGE = ('libvirt lost count of the vCPUs of this server after '
                     'a vCPU unplug timed out: vCPU changes are refused '
                     'until it is hard rebooted or stopped and started')


class Superseded(exception.NovaException):
    msg_fmt = ("Not applied: superseded by a newer adjustment "
               "(%(request_id)s)")


def _update(instance, change, *args, **kwargs):
    """Change the records on a fresh copy of the instance and save it.

    Instance.save() writes the whole system_metadata, so re-read it first
    to keep what the API wrote meanwhile (a newer sequence number).
    """
    instance.refresh()
    change(instance, *args, **kwargs)
    instance.save()


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

    def adjust(self, context, instance, vcpus, memory_mb, persist,
               sequence):
        with lockutils.lock('xloud-adjust-%s' % instance.uuid):
            try:
                self._adjust_locked(context, instance.uuid, vcpus, memory_mb,
                                    persist, sequence)
            except Exception:
                # The event and the records already say what happened.
                LOG.info('Adjustment %(request)s of %(uuid)s failed',
                         {'request': context.request_id,
                          'uuid': instance.uuid}, exc_info=True)

    def _load(self, context, uuid):
        return objects.Instance.get_by_uuid(
            context, uuid, expected_attrs=['system_metadata', 'flavor'])

    def _adjust_locked(self, context, uuid, vcpus, memory_mb, persist,
                       sequence):
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
            try:
                self._apply(context, instance, vcpus, memory_mb, persist)
            except Exception as e:
                message = (e.format_message()
                           if isinstance(e, exception.NovaException)
                           else 'Unexpected error: %s' % e)
                compute_utils.add_instance_fault_from_exc(
                    context, instance, e, sys.exc_info(),
                    fault_message=message)
                _update(instance, records.set_result, context.request_id,
                        records.STATUS_ERROR, message)
                self._notify(context, notifications.ERROR, instance, old,
                             records.current(instance), persist, message)
                raise AdjustFailed(reason=message)
            else:
                _update(instance, records.set_result, context.request_id,
                        records.STATUS_SUCCESS)
                self._notify(context, notifications.END, instance, old,
                             records.current(instance), persist)
            finally:
                self._reconcile_allocation(context, instance, sequence)

    def _notify(self, context, phase, instance, old, new, persist,
                message=None):
        try:
            notifications.notify(context, self.manager.host, phase, instance,
                                 old, new, persist, message)
        except Exception:
            # Monitoring must not change what happens to the guest.
            LOG.exception('Could not send the %s notification of the '
                          'adjustment of %s', phase, instance.uuid)

    def _apply(self, context, instance, vcpus, memory_mb, persist):
        flavor = instance.flavor
        self._check_range(flavor, vcpus, memory_mb)
        if instance.task_state is not None:
            # Started after the API accepted this adjustment.
            raise AdjustFailed(reason='the server has a task in progress: '
                               '%s' % instance.task_state)
        # The API raised the allocation already; make sure it still covers
        # the increase (another adjustment may have lowered it meanwhile)
        # before the guest is touched.
        try:
            placement.set_amounts(context, instance, vcpus=vcpus,
                                  memory_mb=memory_mb, only_increase=True,
                                  client=self.manager.reportclient)
        except placement.PlacementRefused as e:
            raise AdjustFailed(reason=e.format_message())
        if instance.vm_state == vm_states.STOPPED:
            if not persist:
                raise AdjustFailed(reason='the server is stopped; only a '
                                   'persisted adjustment applies to it')
            _update(instance, records.set_persisted, flavor, vcpus,
                    memory_mb)
            _update(instance, records.forget_live)
            return
        if instance.vm_state != vm_states.ACTIVE:
            raise AdjustFailed(reason='the server is %s' % instance.vm_state)
        if not libvirt_adjust.is_libvirt(self.driver):
            raise AdjustFailed(reason='the compute driver %s cannot adjust '
                               'a running server' %
                               type(self.driver).__name__)
        now = records.current(instance, flavor)
        if vcpus is not None:
            if records.vcpus_unsettled(instance):
                raise AdjustFailed(reason=UNSETTLED_MESSAGE)
            try:
                actual = libvirt_adjust.set_vcpus(
                    self.driver, instance, vcpus, decrease=vcpus < now.vcpus)
            except libvirt_adjust.VcpusUnsettled as e:
                self._record_unsettled(instance, flavor, persist, vcpus, e)
                raise
            self._record(instance, flavor, persist and actual == vcpus,
                         vcpus=actual)
            if actual != vcpus:
                raise AdjustFailed(
                    reason='the guest has %d vCPUs, not %d: it did not '
                           'release them all' % (actual, vcpus))
        if memory_mb is not None:
            libvirt_adjust.set_memory(self.driver, instance, memory_mb)
            self._record(instance, flavor, persist, memory_mb=memory_mb)

    @staticmethod
    def _record(instance, flavor, persist, **amounts):
        _update(instance, records.set_live, flavor, **amounts)
        if persist:
            _update(instance, records.set_persisted, flavor, **amounts)

    def _record_unsettled(self, instance, flavor, persist, vcpus, error):
        present = error.kwargs['present']
        if present is not None:
            self._record(instance, flavor, persist and present == vcpus,
                         vcpus=present)
        _update(instance, records.mark_vcpus_unsettled,
                error.kwargs['counted'])

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

    def _reconcile_allocation(self, context, instance, sequence):
        """Make the allocation equal what the guest now has.

        Left alone while a newer adjustment is pending: the API raised the
        allocation for it and that adjustment reconciles it.
        """
        try:
            fresh = self._load(context, instance.uuid)
            if records.sequence(fresh) > sequence:
                return
            now = records.current(fresh)
            placement.set_amounts(context, fresh, vcpus=now.vcpus,
                                  memory_mb=now.memory_mb,
                                  client=self.manager.reportclient)
        except Exception:
            LOG.exception('Could not set the placement allocation of '
                          '%s to its current resources', instance.uuid)
