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

"""Drift repair and the capped balloon, end to end on fakelibvirt.

Each test makes one kind of drift (records behind the guest, allocation
behind the records, a guest changed with what ``virsh setvcpus`` /
``virsh setmem`` do) and runs the periodic task the compute registered,
as the compute's periodic loop would.
"""

import datetime
from importlib import metadata
from unittest import mock

import fixtures
from lxml import etree
from nova import context as nova_context
from nova.db.main import api as db_api
from nova.db.main import models as db_models
from nova import objects
from oslo_concurrency import lockutils
from oslo_utils import units

from nova_xloud.compute import drift
from nova_xloud.compute import rpcapi
from nova_xloud import records
from nova_xloud.testing import base

LIBVIRT_CHANGES = ('setVcpusFlags', 'setMemoryFlags')


class DriftTestBase(base.LiveAdjustBase):

    def setUp(self):
        super().setUp()
        self.flags(notification_format='versioned', group='notifications')
        self.ctxt = nova_context.get_admin_context()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.compute.drift._seen_drifted', {}))

    def _run_periodic(self, runs=2):
        """Run the drift repair task the compute manager registered.

        Twice by default: a drift is repaired when two runs in a row see
        the guest the same.
        """
        manager = self.computes[base.COMPUTE].manager
        task = dict(manager._periodic_tasks)[drift.TASK_NAME]
        for _run in range(runs):
            task(manager, self.ctxt)

    def _adjust(self, server, **body):
        adjustment = self._post(server, body)['adjustment']
        self._wait_event(server, adjustment['request_id'], 'Success')

    def _show(self, server):
        return self.admin_api.api_get(
            base.ADJUST_URL % server['id']).body['adjustment']

    def _records(self, server):
        shown = self._show(server)
        return shown['current_vcpus'], shown['current_memory_mb']

    def _state(self, server):
        """(guest, records, allocation) of the server."""
        return self._live(server), self._records(server), (
            self._allocation(server))

    def _outside_nova(self, server, vcpus=None, memory_mb=None):
        self.libvirt_ext.change_outside_nova(
            self._domain(server), vcpus=vcpus,
            memory_kib=memory_mb and memory_mb * units.Ki)

    def _write_sysmeta(self, server, change):
        instance = objects.Instance.get_by_uuid(
            self.ctxt, server['id'], expected_attrs=['system_metadata'])
        change(instance.system_metadata)
        instance.save()

    def _set_allocation(self, server, vcpus, memory_mb):
        url = '/allocations/%s' % server['id']
        current = self.placement.get(url, version='1.28').body
        allocations = current['allocations']
        allocations[self.rp_uuid]['resources'].update(
            VCPU=vcpus, MEMORY_MB=memory_mb)
        self.placement.put(url, {
            'allocations': {rp: {'resources': a['resources']}
                            for rp, a in allocations.items()},
            'consumer_generation': current['consumer_generation'],
            'project_id': current['project_id'],
            'user_id': current['user_id']}, version='1.28')

    def _age_adjustment(self, server, seconds):
        """Date the last adjustment's instance action seconds earlier."""
        request_id = self._show(server)['last_request_id']
        with db_api.get_context_manager(self.ctxt).writer.using(self.ctxt):
            query = self.ctxt.session.query(db_models.InstanceAction)
            action = query.filter_by(instance_uuid=server['id'],
                                     request_id=request_id).one()
            action.start_time -= datetime.timedelta(seconds=seconds)

    def _set_task_state(self, server, task_state):
        instance = objects.Instance.get_by_uuid(self.ctxt, server['id'])
        instance.task_state = task_state
        instance.save()

    def _repair_notifications(self):
        return [n for n in self.notifier.versioned_notifications
                if n['event_type'] == 'xloud_adjust.update']

    def _libvirt_changes(self):
        return [call for call in self.libvirt_ext.calls
                if call[0] in LIBVIRT_CHANGES]


class DriftRepairTestCase(DriftTestBase):

    def setUp(self):
        super().setUp()
        self.server = self._boot()

    def test_registered_to_run_at_start_and_every_interval(self):
        manager = self.computes[base.COMPUTE].manager
        task = dict(manager._periodic_tasks)[drift.TASK_NAME]
        self.assertTrue(task._periodic_immediate)
        self.assertEqual(300, task._periodic_spacing)

    def test_nothing_to_repair(self):
        self._adjust(self.server, current_vcpus=3, current_memory_mb=3072)
        self._run_periodic()
        self.assertEqual(((3, 3072), (3, 3072), (3, 3072)),
                         self._state(self.server))
        self.assertEqual([], self._repair_notifications())

    def test_records_behind_the_guest(self):
        # The guest was changed but the record write was lost.
        self._adjust(self.server, current_vcpus=3, current_memory_mb=3072)

        def lose_the_records(sysmeta):
            for key in records.LIVE_KEYS + records.PERSISTED_KEYS:
                sysmeta.pop(key, None)
        self._write_sysmeta(self.server, lose_the_records)
        self.assertEqual(((3, 3072), (2, 1024), (3, 3072)),
                         self._state(self.server))

        self._run_periodic()
        self.assertEqual(((3, 3072), (3, 3072), (3, 3072)),
                         self._state(self.server))
        # Recorded as live values: the next hard reboot boots the
        # persisted (here the flavor's minimum) values.
        self.assertFalse(self._show(self.server)['persisted'])

    def test_allocation_behind_the_records(self):
        self._adjust(self.server, current_vcpus=3, current_memory_mb=3072)
        self._set_allocation(self.server, 2, 1024)

        self._run_periodic()
        self.assertEqual(((3, 3072), (3, 3072), (3, 3072)),
                         self._state(self.server))
        self.assertTrue(self._show(self.server)['persisted'])

    def test_vcpus_changed_outside_nova(self):
        self._outside_nova(self.server, vcpus=4)
        self.assertEqual(((4, 1024), (2, 1024), (2, 1024)),
                         self._state(self.server))

        self._run_periodic()
        self.assertEqual(((4, 1024), (4, 1024), (4, 1024)),
                         self._state(self.server))
        self.assertEqual(
            {'VCPU': 4, 'MEMORY_MB': 1024, 'DISK_GB': 1},
            self._get_provider_usages(self.rp_uuid))

    def test_memory_changed_outside_nova(self):
        self._outside_nova(self.server, memory_mb=2560)
        self._run_periodic()
        self.assertEqual(((2, 2560), (2, 2560), (2, 2560)),
                         self._state(self.server))

    def test_guest_lowered_outside_nova(self):
        self._adjust(self.server, current_vcpus=4, current_memory_mb=4096)
        self._outside_nova(self.server, vcpus=3, memory_mb=2048)
        self._run_periodic()
        self.assertEqual(((3, 2048), (3, 2048), (3, 2048)),
                         self._state(self.server))

    def test_repair_never_changes_the_guest(self):
        self._adjust(self.server, current_vcpus=3, current_memory_mb=3072)
        self._outside_nova(self.server, vcpus=4, memory_mb=2048)
        self._set_allocation(self.server, 2, 1024)
        domain = self._domain(self.server)
        live = self.libvirt_ext.live(domain)
        config = self.libvirt_ext.config(domain)
        changes = self._libvirt_changes()

        self._run_periodic()
        self.assertEqual(changes, self._libvirt_changes())
        self.assertEqual(live, self.libvirt_ext.live(domain))
        self.assertEqual(config, self.libvirt_ext.config(domain))
        self.assertEqual(((4, 2048), (4, 2048), (4, 2048)),
                         self._state(self.server))

    def test_hard_reboot_after_repair_boots_the_persisted_values(self):
        self._adjust(self.server, current_vcpus=3, current_memory_mb=3072)
        self._outside_nova(self.server, vcpus=4)
        self._run_periodic()
        self._reboot_server(self.server, hard=True)
        self.assertEqual(((3, 3072), (3, 3072), (3, 3072)),
                         self._state(self.server))

    def test_notifies_each_repair(self):
        self._outside_nova(self.server, vcpus=3, memory_mb=2048)
        self._run_periodic()
        [notification] = self._repair_notifications()
        self.assertEqual('INFO', notification['priority'])
        self.assertEqual('nova-compute:compute1',
                         notification['publisher_id'])
        payload = notification['payload']['nova_object.data']
        self.assertEqual(self.server['id'], payload['server_id'])
        self.assertEqual((2, 1024, 3, 2048, False), (
            payload['old_vcpus'], payload['old_memory_mb'],
            payload['new_vcpus'], payload['new_memory_mb'],
            payload['persist']))
        self.assertIn('Drift repair: the guest has 3 vCPUs, 2048 MiB',
                      payload['message'])
        self.assertIn('allocation 2 vCPUs, 1024 MiB -> 3 vCPUs, 2048 MiB',
                      payload['message'])

        # Repaired once: the next run finds nothing.
        self._run_periodic()
        self.assertEqual(1, len(self._repair_notifications()))

    def test_skips_a_server_with_a_task_in_progress(self):
        self._outside_nova(self.server, vcpus=3)
        self._set_task_state(self.server, 'rebooting')
        self._run_periodic()
        self.assertEqual(((3, 1024), (2, 1024), (2, 1024)),
                         self._state(self.server))
        self.assertEqual([], self._repair_notifications())

        self._set_task_state(self.server, None)
        self._run_periodic()
        self.assertEqual(((3, 1024), (3, 1024), (3, 1024)),
                         self._state(self.server))

    def test_skips_a_server_whose_adjustment_is_being_applied(self):
        self._outside_nova(self.server, vcpus=3)
        with lockutils.lock('xloud-adjust-%s' % self.server['id']):
            self._run_periodic()
        self.assertEqual(((3, 1024), (2, 1024), (2, 1024)),
                         self._state(self.server))

        self._run_periodic()
        self.assertEqual((3, 1024), self._records(self.server))

    def test_a_drift_is_repaired_when_the_next_run_sees_it_again(self):
        self._outside_nova(self.server, memory_mb=3072)
        self._run_periodic(runs=1)
        self.assertEqual(((2, 3072), (2, 1024), (2, 1024)),
                         self._state(self.server))
        # The guest moved on (a balloon still settling after a boot): the
        # next run only notes what it sees now.
        self._outside_nova(self.server, memory_mb=2048)
        self._run_periodic(runs=1)
        self.assertEqual(((2, 2048), (2, 1024), (2, 1024)),
                         self._state(self.server))
        self._run_periodic(runs=1)
        self.assertEqual(((2, 2048), (2, 2048), (2, 2048)),
                         self._state(self.server))

    def test_skips_a_server_with_a_pending_adjustment(self):
        self._outside_nova(self.server, vcpus=3)
        self._write_sysmeta(self.server, lambda sysmeta: sysmeta.update({
            records.LAST_STATUS: records.STATUS_PENDING}))
        self._run_periodic()
        self.assertEqual(((3, 1024), (2, 1024), (2, 1024)),
                         self._state(self.server))

        self._write_sysmeta(self.server, lambda sysmeta: sysmeta.update({
            records.LAST_STATUS: records.STATUS_SUCCESS}))
        self._run_periodic()
        self.assertEqual((3, 1024), self._records(self.server))

    def test_a_lost_adjustment_ends_in_error_and_frees_its_claim(self):
        # The cast never reaches the compute: the adjustment stays pending
        # with the allocation the API raised for it.
        with mock.patch.object(rpcapi.XloudComputeAPI, 'adjust'):
            self._post(self.server, {'current_vcpus': 3})
        self.assertEqual('pending', self._show(self.server)['last_status'])
        self.assertEqual(((2, 1024), (2, 1024), (3, 1024)),
                         self._state(self.server))
        self._run_periodic()
        self.assertEqual('pending', self._show(self.server)['last_status'])
        self.assertEqual((3, 1024), self._allocation(self.server))

        # Past [xloud] lost_adjustment_timeout (600 s). The adjustment is
        # made older rather than the clock moved on: a moved clock would
        # also date the services' heartbeats, which run in other threads,
        # into the future, and a compute whose heartbeat is 600 s away
        # from now is down.
        self._age_adjustment(self.server, seconds=601)
        self._run_periodic()
        shown = self._show(self.server)
        self.assertEqual('error', shown['last_status'])
        self.assertIn('did not finish this adjustment within 600 s',
                      shown['last_message'])
        self.assertEqual(((2, 1024), (2, 1024), (2, 1024)),
                         self._state(self.server))
        # The next adjustment is applied as usual.
        self._adjust(self.server, current_vcpus=3)
        self.assertEqual(((3, 1024), (3, 1024), (3, 1024)),
                         self._state(self.server))

    def test_skips_a_server_that_is_not_active(self):
        self._outside_nova(self.server, vcpus=3)
        self.admin_api.post_server_action(self.server['id'], {'pause': None})
        self._wait_for_state_change(self.server, 'PAUSED')
        self._run_periodic()
        self.assertEqual(((3, 1024), (2, 1024), (2, 1024)),
                         self._state(self.server))
        self.assertEqual([], self._repair_notifications())

        self.admin_api.post_server_action(self.server['id'],
                                          {'unpause': None})
        self._wait_for_state_change(self.server, 'ACTIVE')
        self._run_periodic()
        self.assertEqual((3, 1024), self._records(self.server))

    def test_skips_a_stopped_server(self):
        self._stop_server(self.server)
        self._set_allocation(self.server, 3, 3072)
        self._run_periodic()
        self.assertEqual((3, 3072), self._allocation(self.server))
        self.assertEqual([], self._repair_notifications())

    def test_never_adjusted_server_without_the_specs_is_not_checked(self):
        server = self._boot(self._flavor(name='plain'))
        self._outside_nova(server, vcpus=2)
        self._run_periodic()
        self.assertEqual((4, 4096), self._allocation(server))
        self.assertEqual([], self._repair_notifications())

    def test_adjusted_server_without_the_specs_is_checked(self):
        server = self._boot(self._flavor(name='plain'))
        self._adjust(server, current_memory_mb=2048)
        self._outside_nova(server, memory_mb=3072)
        self._run_periodic()
        self.assertEqual(((4, 3072), (4, 3072), (4, 3072)),
                         self._state(server))

    def test_guest_outside_the_flavor_range_is_not_recorded(self):
        # minimum_cpu is 2: no record can hold 1 vCPU.
        self._outside_nova(self.server, vcpus=1, memory_mb=2048)
        self._run_periodic()
        self.assertEqual(((1, 2048), (2, 2048), (2, 2048)),
                         self._state(self.server))

    def test_disabled(self):
        self.flags(repair_drift=False, group='xloud')
        self._outside_nova(self.server, vcpus=3)
        self._run_periodic()
        self.assertEqual(((3, 1024), (2, 1024), (2, 1024)),
                         self._state(self.server))

    def test_allocation_without_room_is_a_fault(self):
        self._leave_free_memory(512)
        self._outside_nova(self.server, memory_mb=2048)

        self._run_periodic()
        # The records say what the guest has; the allocation could not.
        self.assertEqual(((2, 2048), (2, 2048), (2, 1024)),
                         self._state(self.server))
        [fault] = objects.InstanceFaultList.get_by_instance_uuids(
            self.ctxt, [self.server['id']])
        self.assertIn('Placement cannot set MEMORY_MB=2048', fault.message)
        [notification] = self._repair_notifications()
        self.assertIn('allocation not repaired', notification['payload'][
            'nova_object.data']['message'])

    def test_follows_qemu_when_libvirt_lost_count_of_vcpus(self):
        self._adjust(self.server, current_vcpus=3)
        self.libvirt_ext.inject_unplug_timeout(released=True)
        adjustment = self._post(self.server, {'current_vcpus': 2})
        self._wait_event(self.server, adjustment['adjustment']['request_id'],
                         'Error')
        self._run_periodic()
        # libvirt still counts 3; the guest (QEMU) has 2, and so do the
        # records and the allocation.
        self.assertEqual(((3, 1024), (2, 1024), (2, 1024)),
                         self._state(self.server))
        self.assertEqual([], self._repair_notifications())

    def test_clears_the_stale_allocation_mark_once_placement_agrees(self):
        self._adjust(self.server, current_vcpus=3)

        def allocation_left_stale(sysmeta):
            sysmeta[records.ALLOCATION_STALE] = 'placement was down'
        self._write_sysmeta(self.server, allocation_left_stale)
        self._set_allocation(self.server, 2, 1024)

        self._run_periodic()
        self.assertEqual(((3, 1024), (3, 1024), (3, 1024)),
                         self._state(self.server))
        instance = objects.Instance.get_by_uuid(
            self.ctxt, self.server['id'], expected_attrs=['system_metadata'])
        self.assertNotIn(records.ALLOCATION_STALE, instance.system_metadata)


class CappedBalloonTestCase(DriftTestBase):
    """The balloon Nova defines: a cap for servers with minimum_memory."""

    def _balloon(self, server):
        tree = etree.fromstring(self.libvirt_ext.defined_xml(
            self._domain(server)))
        [balloon] = tree.findall('./devices/memballoon')
        return dict(balloon.attrib)

    def _autodeflate_written_by_nova(self):
        return int(metadata.version('nova').split('.')[0]) >= 32

    def test_minimum_memory_server_cannot_deflate_its_balloon(self):
        server = self._boot()
        balloon = self._balloon(server)
        self.assertEqual('virtio', balloon['model'])
        if self._autodeflate_written_by_nova():
            self.assertEqual('off', balloon['autodeflate'])
            self.assertEqual('on', balloon['freePageReporting'])
        else:
            self.assertNotIn('autodeflate', balloon)

    def test_still_a_cap_after_growing_to_the_maximum_and_a_reboot(self):
        server = self._boot()
        self._adjust(server, current_memory_mb=4096)
        self._reboot_server(server, hard=True)
        self.assertEqual(str(4096 * units.Ki), self._boot_xml(server)[1])
        self.assertNotEqual('on', self._balloon(server).get('autodeflate'))

    def test_server_without_the_specs_keeps_the_upstream_balloon(self):
        server = self._boot(self._flavor(name='plain'))
        balloon = self._balloon(server)
        if self._autodeflate_written_by_nova():
            self.assertEqual('on', balloon['autodeflate'])
            self.assertEqual('on', balloon['freePageReporting'])
        else:
            self.assertNotIn('autodeflate', balloon)
            self.assertNotIn('freePageReporting', balloon)
