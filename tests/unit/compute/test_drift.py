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

import datetime
from unittest import mock

import fixtures
from nova.compute import vm_states
from nova import context
from nova import test
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.unit import fake_instance
from oslo_concurrency import lockutils
from oslo_config import cfg
from oslo_service import periodic_task
from oslo_utils import fixture as utils_fixture
from oslo_utils.fixture import uuidsentinel as uuids

from nova_xloud.compute import drift
from nova_xloud import records
from nova_xloud.testing import fake_store
from nova_xloud.virt import libvirt_adjust
from nova_xloud.virt import resources
from tests.unit.compute import test_live_adjust

R = resources.Resources
LIMITS = records.Limits(vcpus=records.Range(2, 4),
                        memory_mb=records.Range(1024, 4096))


class PlanRepairTestCase(test.NoDBTestCase):

    def test_nothing_drifted(self):
        plan = drift.plan_repair(R(3, 2048), R(3, 2048), R(3, 2048), LIMITS)
        self.assertIsNone(plan.records)
        self.assertIsNone(plan.allocation)
        self.assertEqual((), plan.ignored)

    def test_records_behind_the_guest(self):
        plan = drift.plan_repair(R(3, 2048), R(2, 1024), R(3, 2048), LIMITS)
        self.assertEqual(R(3, 2048), plan.records)
        self.assertIsNone(plan.allocation)

    def test_allocation_behind_the_records(self):
        plan = drift.plan_repair(R(3, 2048), R(3, 2048), R(2, 2048), LIMITS)
        self.assertIsNone(plan.records)
        # Only what differs is set.
        self.assertEqual(R(3, None), plan.allocation)

    def test_guest_changed_outside_nova(self):
        plan = drift.plan_repair(R(2, 3072), R(4, 1024), R(4, 1024), LIMITS)
        self.assertEqual(R(2, 3072), plan.records)
        self.assertEqual(R(2, 3072), plan.allocation)

    def test_value_outside_the_flavor_range_is_ignored(self):
        plan = drift.plan_repair(R(1, 3072), R(2, 1024), R(2, 1024), LIMITS)
        self.assertEqual(('vcpus',), plan.ignored)
        self.assertEqual(R(2, 3072), plan.records)
        self.assertEqual(R(None, 3072), plan.allocation)

    def test_nothing_allocated(self):
        plan = drift.plan_repair(R(3, 2048), R(2, 1024), None, LIMITS)
        self.assertEqual(R(3, 2048), plan.records)
        self.assertIsNone(plan.allocation)

    def test_allocation_without_memory(self):
        plan = drift.plan_repair(R(3, 2048), R(3, 2048), R(2, None), LIMITS)
        self.assertEqual(R(3, None), plan.allocation)

    def test_full_claim_is_only_raised(self):
        # claim_minimum_in_placement = False: the allocation may hold the
        # flavor's full amounts; it is raised, never lowered, to the guest.
        plan = drift.plan_repair(R(2, 3072), R(2, 1024), R(4, 2048), LIMITS,
                                 claim_minimum=False)
        self.assertEqual(R(None, 3072), plan.allocation)
        plan = drift.plan_repair(R(2, 1024), R(2, 1024), R(4, 4096), LIMITS,
                                 claim_minimum=False)
        self.assertIsNone(plan.allocation)


class SkipReasonTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.ctxt = context.get_admin_context()

    def _instance(self, flavor=None, sysmeta=None, **kwargs):
        kwargs.setdefault('host', 'compute1')
        kwargs.setdefault('vm_state', vm_states.ACTIVE)
        kwargs.setdefault('task_state', None)
        instance = fake_instance.fake_instance_obj(
            self.ctxt, flavor=flavor or test_live_adjust.make_flavor(
                minimum_cpu='2'), **kwargs)
        instance.system_metadata = dict(sysmeta or {})
        return instance

    def test_checked(self):
        self.assertIsNone(drift.skip_reason(self._instance(), 'compute1'))

    def test_other_host(self):
        self.assertEqual('it is not on this host', drift.skip_reason(
            self._instance(host='compute2'), 'compute1'))

    def test_not_active(self):
        for state in (vm_states.STOPPED, vm_states.PAUSED,
                      vm_states.RESIZED, vm_states.ERROR):
            self.assertEqual('it is %s' % state, drift.skip_reason(
                self._instance(vm_state=state), 'compute1'))

    def test_task_in_progress(self):
        self.assertIn('task in progress: migrating', drift.skip_reason(
            self._instance(task_state='migrating'), 'compute1'))

    def test_pending_adjustment(self):
        instance = self._instance(sysmeta={
            records.LAST_STATUS: records.STATUS_PENDING})
        self.assertEqual('an adjustment is pending',
                         drift.skip_reason(instance, 'compute1'))

    def test_lost_pending_adjustment_is_checked(self):
        instance = self._instance(sysmeta={
            records.LAST_STATUS: records.STATUS_PENDING})
        self.assertIsNone(drift.skip_reason(instance, 'compute1', lost=True))

    def test_never_adjusted_without_the_specs(self):
        instance = self._instance(
            flavor=test_live_adjust.make_flavor(),
            sysmeta={'image_base_image_ref': 'x'})
        self.assertEqual('it is not adjusted',
                         drift.skip_reason(instance, 'compute1'))

    def test_adjusted_without_the_specs(self):
        instance = self._instance(
            flavor=test_live_adjust.make_flavor(),
            sysmeta={records.LAST_STATUS: records.STATUS_SUCCESS})
        self.assertIsNone(drift.skip_reason(instance, 'compute1'))

    def test_minimum_memory_only(self):
        instance = self._instance(flavor=test_live_adjust.make_flavor(
            minimum_memory='1024'))
        self.assertIsNone(drift.skip_reason(instance, 'compute1'))


class FakeManager(periodic_task.PeriodicTasks):
    """A class of its own per test: tasks are kept per class."""

    def __init__(self):
        super().__init__(cfg.ConfigOpts())
        self.host = 'compute1'


class RegisterPeriodicTaskTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.compute.drift._registered', set()))
        self.manager_class = type('Manager', (FakeManager,), {})

    def _tasks(self, manager):
        return [task for name, task in manager._periodic_tasks
                if name == drift.TASK_NAME]

    def test_runs_at_start_then_every_interval(self):
        self.flags(drift_repair_interval=120, group='xloud')
        manager = self.manager_class()
        self.assertTrue(drift.register_periodic_task(manager))
        [task] = self._tasks(manager)
        self.assertEqual(120, task._periodic_spacing)
        self.assertTrue(task._periodic_immediate)
        self.assertIsNone(manager._periodic_last_run[drift.TASK_NAME])

        with mock.patch.object(drift.DriftRepairer, 'run') as mock_run:
            manager.run_periodic_tasks(mock.sentinel.ctxt)
            # Not due again before the interval.
            manager.run_periodic_tasks(mock.sentinel.ctxt)
        mock_run.assert_called_once_with(mock.sentinel.ctxt)

    def test_once_per_manager_class(self):
        first = self.manager_class()
        self.assertTrue(drift.register_periodic_task(first))
        second = self.manager_class()
        self.assertFalse(drift.register_periodic_task(second))
        self.assertEqual(1, len(self._tasks(second)))

        with mock.patch.object(drift, 'DriftRepairer') as mock_repairer:
            second.run_periodic_tasks(mock.sentinel.ctxt)
        # The task runs for the manager that runs it.
        mock_repairer.assert_called_once_with(second)

    def test_not_registered_when_disabled(self):
        self.flags(repair_drift=False, group='xloud')
        manager = self.manager_class()
        self.assertFalse(drift.register_periodic_task(manager))
        self.assertEqual([], self._tasks(manager))

    def test_disabled_after_registration_does_nothing(self):
        manager = self.manager_class()
        drift.register_periodic_task(manager)
        self.flags(repair_drift=False, group='xloud')
        with mock.patch.object(drift.DriftRepairer, 'run') as mock_run:
            manager.run_periodic_tasks(mock.sentinel.ctxt)
        mock_run.assert_not_called()


class CheckTestCase(test.NoDBTestCase):

    def test_lock_held_by_an_adjustment_skips_the_server(self):
        repairer = drift.DriftRepairer(mock.Mock())
        with mock.patch.object(repairer, '_check_locked') as mock_check:
            with lockutils.lock('xloud-adjust-%s' % uuids.instance):
                self.assertIsNone(repairer.check('ctxt', uuids.instance))
            mock_check.assert_not_called()
            repairer.check('ctxt', uuids.instance)
        mock_check.assert_called_once_with('ctxt', uuids.instance)

    def test_one_failing_server_does_not_stop_the_others(self):
        manager = mock.Mock(host='compute1')
        repairer = drift.DriftRepairer(manager)
        instances = [mock.sentinel.first, mock.sentinel.second]
        for instance, uuid in zip(instances, (uuids.first, uuids.second)):
            instance.uuid = uuid
        self.useFixture(fixtures.MockPatch(
            'nova.objects.InstanceList.get_by_host', return_value=instances))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.compute.drift.skip_reason', return_value=None))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.libvirt_adjust.is_libvirt', return_value=True))
        with mock.patch.object(repairer, 'check',
                               side_effect=[ValueError('boom'), None]) as m:
            repairer.run('ctxt')
        self.assertEqual([mock.call('ctxt', uuids.first),
                          mock.call('ctxt', uuids.second)], m.call_args_list)

    def test_forgets_what_it_saw_of_servers_that_left(self):
        seen = {uuids.here: 'seen', uuids.gone: 'seen'}
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.compute.drift._seen_drifted', seen))
        here = mock.Mock(uuid=uuids.here)
        self.useFixture(fixtures.MockPatch(
            'nova.objects.InstanceList.get_by_host', return_value=[here]))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.compute.drift.skip_reason', return_value='skipped'))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.libvirt_adjust.is_libvirt', return_value=True))
        drift.DriftRepairer(mock.Mock(host='compute1')).run('ctxt')
        self.assertEqual({uuids.here: 'seen'}, seen)

    def test_observation_is_stored(self):
        store = self.useFixture(fake_store.FakeStore())
        instance = fake_instance.fake_instance_obj(
            context.get_admin_context(), uuid=uuids.instance)
        instance.system_metadata = {}
        vcpus = records.observe_vcpus(online=3, observed_at='T')
        memory = records.observe_memory(actual_mb=2048, usable_mb=1800,
                                        observed_at='T')
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.guest_view.observe_vcpus', return_value=vcpus))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.guest_view.observe_memory',
            return_value=memory))
        repairer = drift.DriftRepairer(mock.Mock())
        repairer._record_observation('ctxt', instance)
        self.assertEqual(1, len(store.writes))
        self.assertEqual((vcpus, memory), (
            records.observed_vcpus(instance),
            records.observed_memory(instance)))

    def test_observation_that_cannot_be_stored_is_logged(self):
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.store.update', side_effect=ValueError('db gone')))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.guest_view.observe_vcpus'))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.guest_view.observe_memory'))
        with mock.patch.object(drift.LOG, 'warning') as warning:
            drift.DriftRepairer(mock.Mock())._record_observation(
                'ctxt', mock.Mock(uuid=uuids.instance))
        self.assertIn('db gone', str(warning.call_args[0][1]['error']))

    def test_other_drivers_are_not_checked(self):
        manager = mock.Mock(host='compute1')
        with mock.patch('nova.objects.InstanceList.get_by_host') as m:
            drift.DriftRepairer(manager).run('ctxt')
        m.assert_not_called()


class LiveResourcesTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.host.libvirt', fakelibvirt))
        self.domain = mock.Mock()
        self.driver = mock.Mock()
        self.driver._host.get_guest.return_value._domain = self.domain
        self.instance = mock.Mock(uuid=uuids.instance, system_metadata={})

    def test_live_count_and_balloon_rounded_up(self):
        self.domain.vcpusFlags.return_value = 3
        self.domain.XMLDesc.return_value = (
            '<domain><memory unit="KiB">4194304</memory>'
            '<currentMemory unit="KiB">2096128</currentMemory></domain>')
        self.assertEqual(R(3, 2047), libvirt_adjust.live_resources(
            self.driver, self.instance))
        self.domain.vcpusFlags.assert_called_once_with(
            fakelibvirt.VIR_DOMAIN_AFFECT_LIVE)
        self.domain.XMLDesc.assert_called_once_with(0)
        self.domain.XMLDesc.return_value = (
            '<domain><memory>4194304</memory>'
            '<currentMemory>2096129</currentMemory></domain>')
        self.assertEqual(R(3, 2048), libvirt_adjust.live_resources(
            self.driver, self.instance))

    def test_without_current_memory_the_guest_has_all(self):
        self.domain.vcpusFlags.return_value = 4
        self.domain.XMLDesc.return_value = (
            '<domain><memory>4194304</memory></domain>')
        self.assertEqual(R(4, 4096), libvirt_adjust.live_resources(
            self.driver, self.instance))

    def test_qemu_count_when_libvirt_lost_count(self):
        self.instance.system_metadata = {'xloud_vcpus_unsettled': '3'}
        self.domain.XMLDesc.return_value = (
            '<domain><memory>4194304</memory></domain>')
        with mock.patch.object(libvirt_adjust, 'vcpus_in_qemu',
                               return_value=2) as qemu:
            self.assertEqual(R(2, 4096), libvirt_adjust.live_resources(
                self.driver, self.instance))
        qemu.assert_called_once_with(self.domain)
        self.domain.vcpusFlags.assert_not_called()

    def test_libvirt_error(self):
        self.domain.vcpusFlags.side_effect = fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError, 'domain is not running',
            error_code=fakelibvirt.VIR_ERR_OPERATION_INVALID)
        e = self.assertRaises(libvirt_adjust.AdjustFailed,
                              libvirt_adjust.live_resources, self.driver,
                              self.instance)
        self.assertIn('domain is not running', e.format_message())
        self.domain.setVcpusFlags.assert_not_called()


class CheckLockedTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.ctxt = context.get_admin_context()
        self.manager = mock.Mock(host='compute1')
        self.instance = fake_instance.fake_instance_obj(
            self.ctxt, host='compute1', vm_state=vm_states.ACTIVE,
            task_state=None,
            flavor=test_live_adjust.make_flavor(minimum_cpu='2'))
        self.instance.system_metadata = {}
        self.useFixture(fixtures.MockPatch(
            'nova.objects.Instance.get_by_uuid', return_value=self.instance))
        self.repairer = drift.DriftRepairer(self.manager)

    def test_guest_libvirt_cannot_describe_is_left_alone(self):
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.libvirt_adjust.live_resources',
            side_effect=libvirt_adjust.AdjustFailed(reason='gone')))
        with mock.patch.object(self.repairer, '_repair') as mock_repair:
            self.assertIsNone(self.repairer._check_locked(
                self.ctxt, self.instance.uuid))
        mock_repair.assert_not_called()
        self.manager.reportclient.get_allocs_for_consumer.assert_not_called()

    def test_state_is_checked_again_under_the_lock(self):
        self.instance.task_state = 'migrating'
        live = self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.libvirt_adjust.live_resources')).mock
        self.assertIsNone(self.repairer._check_locked(
            self.ctxt, self.instance.uuid))
        live.assert_not_called()


class LostAdjustmentTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.ctxt = context.get_admin_context()
        self.instance = fake_instance.fake_instance_obj(
            self.ctxt, host='compute1', vm_state=vm_states.ACTIVE,
            task_state=None,
            flavor=test_live_adjust.make_flavor(minimum_cpu='2'))
        self.instance.system_metadata = {
            records.LAST_REQUEST_ID: 'req-1',
            records.LAST_STATUS: records.STATUS_PENDING}
        # utcnow() is naive; Nova's object times are aware.
        self.now = datetime.datetime(2026, 11, 30, 12, 0, 0)
        self.useFixture(utils_fixture.TimeFixture(self.now))
        self.get_action = self.useFixture(fixtures.MockPatch(
            'nova.objects.InstanceAction.get_by_request_id')).mock

    def _started(self, seconds_ago):
        self.get_action.return_value = mock.Mock(start_time=(
            self.now - datetime.timedelta(seconds=seconds_ago)).replace(
                tzinfo=datetime.timezone.utc))

    def test_older_than_the_timeout_is_lost(self):
        self._started(601)
        self.assertTrue(drift.pending_is_lost(self.ctxt, self.instance))
        self.get_action.assert_called_once_with(
            self.ctxt, self.instance.uuid, 'req-1')

    def test_younger_is_not(self):
        self._started(599)
        self.assertFalse(drift.pending_is_lost(self.ctxt, self.instance))

    def test_zero_never_gives_up(self):
        self.flags(lost_adjustment_timeout=0, group='xloud')
        self._started(10 ** 6)
        self.assertFalse(drift.pending_is_lost(self.ctxt, self.instance))
        self.get_action.assert_not_called()

    def test_without_an_action_or_request_it_is_not_lost(self):
        self.get_action.return_value = None
        self.assertFalse(drift.pending_is_lost(self.ctxt, self.instance))
        del self.instance.system_metadata[records.LAST_REQUEST_ID]
        self.assertFalse(drift.pending_is_lost(self.ctxt, self.instance))

    def test_ending_it_records_an_error_naming_the_timeout(self):
        update = self.useFixture(fixtures.MockPatch(
            'nova_xloud.store.update')).mock
        drift.end_lost(self.ctxt, self.instance)
        update.assert_called_once_with(
            self.ctxt, self.instance, records.set_result, 'req-1',
            records.STATUS_ERROR, drift.LOST_MESSAGE % 600)
        self.assertIn('within 600 s', drift.LOST_MESSAGE % 600)
