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

from importlib import metadata
import json
from unittest import mock

import fixtures
from keystoneauth1 import exceptions as ks_exc
from nova.compute import manager as compute_manager
from nova.compute import task_states
from nova.compute import vm_states
from nova import context
from nova import objects
from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.unit import fake_instance
from nova.virt import hardware
import oslo_messaging as messaging
from oslo_utils.fixture import uuidsentinel as uuids
from oslo_utils import units

from nova_xloud.compute import adjust
from nova_xloud.compute import endpoint
from nova_xloud.compute import placement
from nova_xloud.compute import rpcapi
from nova_xloud import records
from nova_xloud.testing import fake_store
from nova_xloud.virt import guest_view
from nova_xloud.virt import libvirt_adjust
from nova_xloud.virt import resources

UUID = '8b8f5d4c-11c4-4ebb-8f0b-6c4a07a4c1d2'
RP = 'c2b0b7c2-93a4-4e4f-a0f3-3e4b3b33f1c0'


def make_flavor(vcpus=4, memory_mb=4096, **extra_specs):
    return objects.Flavor(name='xl', flavorid='xl-id', vcpus=vcpus,
                          memory_mb=memory_mb, root_gb=1, ephemeral_gb=0,
                          swap=0, extra_specs=extra_specs)


class RPCAPITestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.ctxt = context.get_admin_context()
        self.client = mock.Mock()
        self.get_client = self.useFixture(fixtures.MockPatch(
            'nova.rpc.get_client', return_value=self.client)).mock
        self.api = rpcapi.XloudComputeAPI()

    def test_target(self):
        self.api.client
        target = self.get_client.call_args[0][0]
        self.assertEqual(('compute', 'xloud', '1.0'),
                         (target.topic, target.namespace, target.version))
        self.assertIsNotNone(self.get_client.call_args[1]['serializer'])

    def test_describe_host(self):
        self.flags(describe_timeout=3, group='xloud')
        self.api.describe_host(self.ctxt, 'compute1')
        self.client.prepare.assert_called_once_with(
            server='compute1', version='1.0', timeout=3)
        self.client.prepare.return_value.call.assert_called_once_with(
            self.ctxt, 'describe_host')

    def test_describe_host_cached_asks_once_per_period(self):
        self.flags(compute_info_cache_seconds=60, group='xloud')
        call = self.client.prepare.return_value.call
        call.side_effect = [{'version': '1.0', 'n': 1},
                            {'version': '1.0', 'n': 2},
                            {'version': '1.0', 'n': 3}]
        with mock.patch.object(rpcapi, 'time') as clock:
            for now, host, expected in ((100, 'c1', 1), (159, 'c1', 1),
                                        (159, 'c2', 2), (160, 'c1', 3),
                                        (200, 'c1', 3)):
                clock.monotonic.return_value = now
                self.assertEqual(expected, self.api.describe_host_cached(
                    self.ctxt, host)['n'], (now, host))
        self.assertEqual(3, call.call_count)

    def test_describe_host_cached_keeps_no_failure(self):
        call = self.client.prepare.return_value.call
        call.side_effect = [messaging.MessagingTimeout(),
                            {'version': '1.0'}, {'version': '1.0'}]
        self.assertRaises(messaging.MessagingTimeout,
                          self.api.describe_host_cached, self.ctxt, 'c1')
        self.api.describe_host_cached(self.ctxt, 'c1')
        self.api.describe_host_cached(self.ctxt, 'c1')
        self.assertEqual(2, call.call_count)

    def test_describe_host_cached_off(self):
        self.flags(compute_info_cache_seconds=0, group='xloud')
        call = self.client.prepare.return_value.call
        call.return_value = {'version': '1.0'}
        for _ in range(3):
            self.api.describe_host_cached(self.ctxt, 'c1')
        self.assertEqual(3, call.call_count)

    def test_adjust_casts(self):
        instance = fake_instance.fake_instance_obj(self.ctxt, host='c2')
        self.api.adjust(self.ctxt, instance, 3, None, False, 7)
        # Not forced: 1.0, which a compute not upgraded yet takes.
        self.client.prepare.assert_called_once_with(server='c2',
                                                    version='1.0')
        self.client.prepare.return_value.cast.assert_called_once_with(
            self.ctxt, 'adjust', instance=instance, vcpus=3, memory_mb=None,
            persist=False, sequence=7)

    def test_adjust_forced_is_1_1(self):
        instance = fake_instance.fake_instance_obj(self.ctxt, host='c2')
        self.api.adjust(self.ctxt, instance, None, 1024, True, 8,
                        force=True)
        self.client.prepare.assert_called_once_with(server='c2',
                                                    version='1.1')
        self.client.prepare.return_value.cast.assert_called_once_with(
            self.ctxt, 'adjust', instance=instance, vcpus=None,
            memory_mb=1024, persist=True, sequence=8, force=True)

    def test_guest_memory_calls(self):
        self.flags(describe_timeout=4, group='xloud')
        instance = fake_instance.fake_instance_obj(self.ctxt, host='c3')
        call = self.client.prepare.return_value.call
        call.return_value = {'actual_mb': 1024}
        self.assertEqual({'actual_mb': 1024},
                         self.api.guest_memory(self.ctxt, instance))
        self.client.prepare.assert_called_once_with(
            server='c3', version='1.1', timeout=4)
        call.assert_called_once_with(self.ctxt, 'guest_memory',
                                     instance=instance)

    def test_version(self):
        self.assertEqual('1.1', rpcapi.VERSION)


class EndpointTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        # create_endpoint registers the boot listener of its manager.
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.virt.libvirt_adjust._boot_listener', None))

    def test_entry_point(self):
        entry_points = [ep for ep in metadata.entry_points(
            group='nova.compute.rpc_endpoints') if ep.name == 'xloud_adjust']
        self.assertEqual(1, len(entry_points))
        self.assertIs(endpoint.create_endpoint, entry_points[0].load())

    def test_compute_manager_serves_it(self):
        compute_manager._rpc_endpoint_plugins.cache_clear()
        self.addCleanup(compute_manager._rpc_endpoint_plugins.cache_clear)
        manager = compute_manager.ComputeManager(
            compute_driver='fake.FakeDriver')
        endpoints = [ep for ep in manager.additional_endpoints
                     if isinstance(ep, endpoint.XloudComputeEndpoint)]
        self.assertEqual(1, len(endpoints))
        self.assertIs(manager, endpoints[0].adjuster.manager)

    def test_registers_the_boot_listener(self):
        ep = endpoint.create_endpoint(mock.Mock())
        self.assertEqual(ep.adjuster.allocation_after_boot,
                         libvirt_adjust._boot_listener)

    def test_target_and_methods(self):
        manager = mock.Mock()
        ep = endpoint.create_endpoint(manager)
        self.assertEqual(('xloud', '1.1'),
                         (ep.target.namespace, ep.target.version))
        self.assertIsNone(ep.target.topic)
        with mock.patch.object(ep.adjuster, 'adjust') as mock_adjust:
            # As a 1.0 caster sends it: no force.
            ep.adjust('ctxt', 'inst', 1, 2, True, 3)
            ep.adjust('ctxt', 'inst', 1, 2, True, 4, force=True)
        self.assertEqual([
            mock.call('ctxt', 'inst', 1, 2, True, 3, force=False),
            mock.call('ctxt', 'inst', 1, 2, True, 4, force=True)],
            mock_adjust.call_args_list)
        with mock.patch.object(ep.adjuster, 'guest_memory',
                               return_value={'actual_mb': 1}) as memory:
            self.assertEqual({'actual_mb': 1},
                             ep.guest_memory('ctxt', 'inst'))
        memory.assert_called_once_with('ctxt', 'inst')

    def test_dispatcher_serves_both_versions(self):
        manager = mock.Mock()
        ep = endpoint.create_endpoint(manager)
        dispatcher = messaging.RPCDispatcher([ep], None)
        for version, method, args in (
                ('1.0', 'adjust', {'instance': 'i', 'vcpus': 2,
                                   'memory_mb': None, 'persist': True,
                                   'sequence': 1}),
                ('1.1', 'adjust', {'instance': 'i', 'vcpus': 2,
                                   'memory_mb': None, 'persist': True,
                                   'sequence': 1, 'force': True}),
                ('1.1', 'guest_memory', {'instance': 'i'})):
            with mock.patch.object(ep.adjuster, method) as called:
                dispatcher.dispatch(mock.Mock(
                    ctxt={}, client_timeout=None, message={
                        'method': method, 'namespace': 'xloud',
                        'version': version, 'args': args}))
            called.assert_called_once()
        # A newer minor than served is refused.
        self.assertRaises(messaging.UnsupportedVersion, dispatcher.dispatch,
                          mock.Mock(ctxt={}, client_timeout=None, message={
                              'method': 'guest_memory', 'namespace': 'xloud',
                              'version': '1.2', 'args': {'instance': 'i'}}))

    def test_describe_host(self):
        self.flags(virt_type='kvm', mem_stats_period_seconds=10,
                   group='libvirt')

        class FakeDriver(object):
            pass

        manager = mock.Mock()
        manager.driver = FakeDriver()
        ep = endpoint.create_endpoint(manager)
        self.assertEqual({'version': '1.1', 'driver': 'FakeDriver',
                          'live_vcpus': False, 'memory_balloon': False},
                         ep.describe_host('ctxt'))
        with mock.patch.object(libvirt_adjust, 'is_libvirt',
                               return_value=True):
            self.assertTrue(ep.describe_host('ctxt')['memory_balloon'])
            self.flags(mem_stats_period_seconds=0, group='libvirt')
            self.assertFalse(ep.describe_host('ctxt')['memory_balloon'])

    def test_unknown_namespace_is_refused_by_dispatcher(self):
        # What an unpatched compute answers: no endpoint in our namespace.
        dispatcher = messaging.RPCDispatcher([object()], None)
        incoming = mock.Mock(ctxt={}, client_timeout=None, message={
            'method': 'describe_host', 'namespace': 'xloud',
            'version': '1.0', 'args': {}})
        self.assertRaises(messaging.UnsupportedVersion,
                          dispatcher.dispatch, incoming)


class FakeClock(object):
    """time.monotonic and time.sleep: sleeping moves the clock."""

    def __init__(self):
        self.now = 1000.0
        self.slept = 0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.slept += seconds
        self.now += seconds


class FakeGuest(object):
    """The guest behind a mock domain: its agent and its balloon.

    Like Linux, it keeps hot-plugged vCPUs offline until told (or, with
    onlines_itself, a udev rule) brings them online.
    """

    def __init__(self, domain, vcpus, memory_mb, uses_mb=100):
        self.vcpus = vcpus
        self.online = set(range(vcpus))
        self.memory_mb = memory_mb
        self.floor_mb = 0
        self.uses_mb = uses_mb
        self.stays_offline = set()
        self.onlines_itself = False
        domain.guestVcpus.side_effect = self.guest_vcpus
        domain.setGuestVcpus.side_effect = self.set_guest_vcpus
        domain.memoryStats.side_effect = self.memory_stats

    def plug(self, count):
        self.vcpus = count
        self.online &= set(range(count))
        if self.onlines_itself:
            self.online = set(range(count))
        return count

    def balloon(self, memory_mb):
        self.memory_mb = max(memory_mb, self.floor_mb)

    def guest_vcpus(self, flags=0):
        return {'vcpus': hardware.format_cpu_spec(set(range(self.vcpus))),
                'online': hardware.format_cpu_spec(self.online)}

    def set_guest_vcpus(self, cpumap, state, flags=0):
        cpus = hardware.parse_cpu_spec(cpumap)
        if state:
            self.online |= cpus - self.stays_offline
        else:
            self.online -= cpus
        return 0

    def memory_stats(self):
        actual = self.memory_mb * units.Ki
        available = actual - 32 * units.Ki
        return {'actual': actual, 'available': available,
                'usable': max(available - self.uses_mb * units.Ki, 0)}


class AdjusterTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.ctxt = context.get_admin_context()
        self.flavor = make_flavor(minimum_cpu='2', minimum_memory='1024')
        self.instance = fake_instance.fake_instance_obj(
            self.ctxt, uuid=UUID, host='compute1', vm_state=vm_states.ACTIVE,
            flavor=self.flavor)
        self.instance.system_metadata = {'xloud_adjust_seq': '1'}
        self.instance.save = mock.Mock()
        self.instance.refresh = mock.Mock()
        self.store = self.useFixture(fake_store.FakeStore())
        self.useFixture(fixtures.MockPatch(
            'nova.objects.Instance.get_by_uuid', return_value=self.instance))
        self.event_start = self.useFixture(fixtures.MockPatch(
            'nova.objects.InstanceActionEvent.event_start')).mock
        self.event_finish = self.useFixture(fixtures.MockPatch(
            'nova.objects.InstanceActionEvent.event_finish_with_failure')
        ).mock
        self.fault = self.useFixture(fixtures.MockPatch(
            'nova.compute.utils.add_instance_fault_from_exc')).mock
        self.set_amounts = self.useFixture(fixtures.MockPatch(
            'nova_xloud.compute.placement.set_amounts')).mock
        self.manager = mock.Mock(host='compute1')
        self.domain = self.manager.driver._host.get_guest.return_value._domain
        # The guest of the mock domain: 2 vCPUs online, 1024 MiB of which
        # it uses 100 (its balloon statistics say so).
        self.guest = FakeGuest(self.domain, vcpus=2, memory_mb=1024)
        self.clock = FakeClock()
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.guest_view.time', new=self.clock))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.host.libvirt', fakelibvirt))
        self.flags(virt_type='kvm', mem_stats_period_seconds=10,
                   group='libvirt')
        self.adjuster = adjust.Adjuster(self.manager)
        self.set_vcpus = self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.libvirt_adjust.set_vcpus',
            side_effect=lambda d, i, count, decrease: self.guest.plug(
                count))).mock
        self.set_memory = self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.libvirt_adjust.set_memory',
            side_effect=lambda d, i, memory_mb: self.guest.balloon(
                memory_mb))).mock
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.libvirt_adjust.is_libvirt', return_value=True))

    def _event_error(self):
        return self.event_finish.call_args[1]['exc_val']

    def test_adjust_success(self):
        self.adjuster.adjust(self.ctxt, self.instance, 3, 2048, True, 1)
        self.set_vcpus.assert_called_once_with(
            self.manager.driver, self.instance, 3, decrease=False)
        self.set_memory.assert_called_once_with(
            self.manager.driver, self.instance, 2048)
        sysmeta = self.instance.system_metadata
        self.assertEqual(('3', '2048', '3', '2048', 'success'), (
            sysmeta['xloud_live_vcpus'], sysmeta['xloud_live_memory_mb'],
            sysmeta['xloud_current_vcpus'],
            sysmeta['xloud_current_memory_mb'],
            sysmeta['xloud_last_status']))
        self.event_start.assert_called_once_with(
            self.ctxt, UUID, 'compute_xloud_adjust', want_result=False,
            host='compute1')
        self.assertIsNone(self._event_error())
        self.assertEqual([
            mock.call(self.ctxt, self.instance, vcpus=3, memory_mb=2048,
                      only_increase=True, client=self.manager.reportclient),
            mock.call(self.ctxt, self.instance, vcpus=3, memory_mb=2048,
                      client=self.manager.reportclient)],
            self.set_amounts.call_args_list)
        self.fault.assert_not_called()
        # One write of the records, nothing through Instance.save().
        self.assertEqual(1, len(self.store.writes))
        self.instance.save.assert_not_called()

    def test_an_increase_the_allocation_holds_asks_placement_once(self):
        self.set_amounts.return_value = placement.Allocation(
            changed=False, vcpus=3, memory_mb=2048)
        self.adjuster.adjust(self.ctxt, self.instance, 3, 2048, True, 1)
        self.set_amounts.assert_called_once_with(
            self.ctxt, self.instance, vcpus=3, memory_mb=2048,
            only_increase=True, client=self.manager.reportclient)
        self.assertIsNone(self._event_error())

    def test_an_increase_held_but_marked_stale_clears_the_mark(self):
        self.instance.system_metadata['xloud_allocation_stale'] = 'down'
        self.set_amounts.return_value = placement.Allocation(
            changed=False, vcpus=3, memory_mb=1024)
        self.adjuster.adjust(self.ctxt, self.instance, 3, None, True, 1)
        self.set_amounts.assert_called_once()
        self.assertNotIn('xloud_allocation_stale',
                         self.instance.system_metadata)

    def test_an_allocation_not_what_the_guest_ends_with_is_set(self):
        # Another writer left more than asked (only_increase keeps it),
        # or the guest did not take all that was asked: set it after.
        for held, vcpus_after in ((placement.Allocation(False, 4, 1024), 3),
                                  (placement.Allocation(False, 3, 1024), 2)):
            self.set_amounts.reset_mock()
            self.set_amounts.return_value = held
            self.set_vcpus.side_effect = (
                lambda d, i, count, decrease, got=vcpus_after: got)
            self.instance.system_metadata = {'xloud_adjust_seq': '1'}
            self.adjuster.adjust(self.ctxt, self.instance, 3, None, True, 1)
            self.assertEqual(
                mock.call(self.ctxt, self.instance, vcpus=vcpus_after,
                          memory_mb=1024, client=self.manager.reportclient),
                self.set_amounts.call_args)
            self.assertEqual(2, self.set_amounts.call_count)

    def test_allocation_failure_after_the_change_is_recorded(self):
        self.set_amounts.side_effect = [None, placement.PlacementUnavailable(
            amounts='VCPU=3', uuid=UUID, host='compute1',
            reason='placement could not be reached')]
        self.adjuster.adjust(self.ctxt, self.instance, 3, None, True, 1)
        self.set_vcpus.assert_called_once()
        sysmeta = self.instance.system_metadata
        self.assertEqual('3', sysmeta['xloud_live_vcpus'])
        self.assertEqual('error', sysmeta['xloud_last_status'])
        self.assertIn('placement could not be reached',
                      sysmeta['xloud_last_message'])
        self.assertIn('placement could not be reached',
                      sysmeta['xloud_allocation_stale'])
        self.assertIn('placement could not be reached',
                      self._event_error().format_message())
        self.fault.assert_called_once()

    def test_reconciled_allocation_clears_the_stale_mark(self):
        self.instance.system_metadata['xloud_allocation_stale'] = 'down'
        self.adjuster.adjust(self.ctxt, self.instance, 3, None, True, 1)
        self.assertNotIn('xloud_allocation_stale',
                         self.instance.system_metadata)
        self.assertIsNone(self._event_error())

    def test_not_persisted(self):
        self.adjuster.adjust(self.ctxt, self.instance, 4, None, False, 1)
        self.assertNotIn('xloud_current_vcpus', self.instance.system_metadata)
        self.assertEqual('4', self.instance.system_metadata[
            'xloud_live_vcpus'])

    def test_libvirt_error(self):
        self.set_vcpus.side_effect = libvirt_adjust.AdjustFailed(
            reason='libvirt could not set 3 vCPUs: boom')
        self.adjuster.adjust(self.ctxt, self.instance, 3, 2048, True, 1)
        self.set_memory.assert_not_called()
        self.assertIn('boom', self._event_error().format_message())
        self.fault.assert_called_once()
        self.assertEqual(('error', 'libvirt could not set 3 vCPUs: boom'), (
            self.instance.system_metadata['xloud_last_status'],
            self.instance.system_metadata['xloud_last_message']))
        self.assertNotIn('xloud_live_vcpus', self.instance.system_metadata)
        # Placement is set back to what the guest has.
        self.set_amounts.assert_called_with(
            self.ctxt, self.instance, vcpus=2, memory_mb=1024,
            client=self.manager.reportclient)
        self.assertEqual(vm_states.ACTIVE, self.instance.vm_state)

    def test_vcpus_not_all_released(self):
        self.set_vcpus.side_effect = None
        self.set_vcpus.return_value = 3
        self.instance.system_metadata.update({
            'xloud_live_vcpus': '4', 'xloud_live_memory_mb': '1024',
            'xloud_live_flavorid': 'xl-id'})
        self.adjuster.adjust(self.ctxt, self.instance, 2, None, True, 1)
        self.assertEqual('3', self.instance.system_metadata[
            'xloud_live_vcpus'])
        self.assertNotIn('xloud_current_vcpus', self.instance.system_metadata)
        self.assertIn('the guest has 3 vCPUs, not 2',
                      self._event_error().format_message())

    def test_superseded(self):
        self.instance.system_metadata['xloud_adjust_seq'] = '2'
        self.adjuster.adjust(self.ctxt, self.instance, 3, None, True, 1)
        self.set_vcpus.assert_not_called()
        self.set_amounts.assert_not_called()
        self.assertIsInstance(self._event_error(), adjust.Superseded)
        self.fault.assert_not_called()

    def test_newer_pending_leaves_allocation(self):
        def bump(*args, **kwargs):
            self.instance.system_metadata['xloud_adjust_seq'] = '2'
            return 3
        self.set_vcpus.side_effect = bump
        self.adjuster.adjust(self.ctxt, self.instance, 3, None, True, 1)
        # Only the check before the change, no reconciliation after it.
        self.set_amounts.assert_called_once_with(
            self.ctxt, self.instance, vcpus=3, memory_mb=None,
            only_increase=True, client=self.manager.reportclient)

    def test_decrease_needs_no_check_before_the_change(self):
        self.instance.system_metadata.update({
            'xloud_live_vcpus': '4', 'xloud_live_memory_mb': '2048',
            'xloud_live_flavorid': 'xl-id'})
        self.adjuster.adjust(self.ctxt, self.instance, 3, 1024, True, 1)
        # Only the lowering after it.
        self.set_amounts.assert_called_once_with(
            self.ctxt, self.instance, vcpus=3, memory_mb=1024,
            client=self.manager.reportclient)

    def test_increase_refused_by_placement(self):
        for error in (placement.PlacementRefused, placement.PlacementBusy,
                      placement.PlacementUnavailable):
            self.set_amounts.side_effect = [error(
                amounts='VCPU=4', uuid=UUID, host='compute1', reason='full'),
                None]
            self.adjuster.adjust(self.ctxt, self.instance, 4, None, True, 1)
            self.set_vcpus.assert_not_called()
            self.assertIn('VCPU=4', self._event_error().format_message())
            self.assertEqual('error', self.instance.system_metadata[
                'xloud_last_status'])
            self.assertNotIn('xloud_allocation_stale',
                             self.instance.system_metadata)

    def test_stopped(self):
        self.instance.vm_state = vm_states.STOPPED
        self.adjuster.adjust(self.ctxt, self.instance, 3, 1536, True, 1)
        self.set_vcpus.assert_not_called()
        self.assertEqual(('3', '1536'), (
            self.instance.system_metadata['xloud_current_vcpus'],
            self.instance.system_metadata['xloud_current_memory_mb']))
        self.set_amounts.assert_called_with(
            self.ctxt, self.instance, vcpus=3, memory_mb=1536,
            client=self.manager.reportclient)

    def test_stopped_not_persisted(self):
        self.instance.vm_state = vm_states.STOPPED
        self.adjuster.adjust(self.ctxt, self.instance, 3, None, False, 1)
        self.assertIn('only a persisted adjustment',
                      self._event_error().format_message())

    def test_task_started_meanwhile(self):
        self.instance.task_state = 'rebooting_hard'
        self.adjuster.adjust(self.ctxt, self.instance, 3, None, True, 1)
        self.set_vcpus.assert_not_called()
        self.assertIn('task in progress: rebooting_hard',
                      self._event_error().format_message())

    def test_range_checked_again(self):
        self.adjuster.adjust(self.ctxt, self.instance, 8, None, True, 1)
        self.set_vcpus.assert_not_called()
        self.assertIn('current_vcpus=8 is out of range 2-4',
                      self._event_error().format_message())

    def test_serialised_per_instance(self):
        with mock.patch('oslo_concurrency.lockutils.lock') as mock_lock:
            self.adjuster.adjust(self.ctxt, self.instance, 3, None, True, 1)
        mock_lock.assert_called_once_with('xloud-adjust-%s' % UUID)

    # What the guest has (issue 14)

    def _with_agent(self):
        self.instance.system_metadata['image_hw_qemu_guest_agent'] = 'yes'

    def _live(self, vcpus, memory_mb):
        self.instance.system_metadata.update({
            'xloud_live_vcpus': str(vcpus),
            'xloud_live_memory_mb': str(memory_mb),
            'xloud_live_flavorid': 'xl-id'})
        self.guest.plug(vcpus)
        self.guest.online = set(range(vcpus))
        self.guest.memory_mb = memory_mb

    def _observed(self):
        return (records.observed_vcpus(self.instance),
                records.observed_memory(self.instance))

    def test_observation_is_in_the_one_records_write(self):
        self.adjuster.adjust(self.ctxt, self.instance, 3, 2048, True, 1)
        self.assertEqual(1, len(self.store.writes))
        written = self.store.writes[0][1]
        self.assertEqual('success', written['xloud_last_status'])
        self.assertIn('xloud_observed_vcpus', written)
        self.assertIn('xloud_observed_memory', written)
        vcpus, memory = self._observed()
        # No agent in the image: not asked, and why.
        self.assertEqual((None, guest_view.NO_AGENT),
                         (vcpus.online, vcpus.reason))
        self.domain.guestVcpus.assert_not_called()
        self.assertEqual((2048, 2016, 1916, records.SOURCE_BALLOON), (
            memory.actual_mb, memory.available_mb, memory.usable_mb,
            memory.source))

    def test_observation_is_in_the_error_write_too(self):
        self.set_vcpus.side_effect = libvirt_adjust.AdjustFailed(
            reason='boom')
        self.adjuster.adjust(self.ctxt, self.instance, 3, None, True, 1)
        self.assertEqual(1, len(self.store.writes))
        written = self.store.writes[0][1]
        self.assertEqual('error', written['xloud_last_status'])
        self.assertIn('xloud_observed_memory', written)
        self.assertEqual(1024, self._observed()[1].actual_mb)

    def test_no_observation_of_a_stopped_server(self):
        self.instance.vm_state = vm_states.STOPPED
        self.adjuster.adjust(self.ctxt, self.instance, 3, 1536, True, 1)
        self.assertNotIn('xloud_observed_vcpus',
                         self.instance.system_metadata)
        self.domain.memoryStats.assert_not_called()

    def test_agent_increase_brings_the_vcpus_online(self):
        self._with_agent()
        self.adjuster.adjust(self.ctxt, self.instance, 4, None, True, 1)
        self.assertIsNone(self._event_error())
        self.set_vcpus.assert_called_once_with(
            self.manager.driver, self.instance, 4, decrease=False)
        # Only the new ones, then confirmed.
        self.domain.setGuestVcpus.assert_called_once_with('2-3', 1)
        self.assertEqual({0, 1, 2, 3}, self.guest.online)
        sysmeta = self.instance.system_metadata
        self.assertEqual(('4', 'success'), (sysmeta['xloud_live_vcpus'],
                                            sysmeta['xloud_last_status']))
        self.assertNotIn('xloud_last_message', sysmeta)
        vcpus = self._observed()[0]
        self.assertEqual((4, records.SOURCE_GUEST_AGENT),
                         (vcpus.online, vcpus.source))

    def test_agent_increase_guest_keeps_one_offline(self):
        self._with_agent()
        self.guest.stays_offline = {3}
        self.adjuster.adjust(self.ctxt, self.instance, 4, None, True, 1)
        self.assertEqual(
            'libvirt gave the guest 4 vCPUs but the guest has 3 online '
            '(QEMU guest agent)', self._event_error().format_message())
        sysmeta = self.instance.system_metadata
        # The records say what libvirt applied; observed what the guest
        # has.
        self.assertEqual(('4', '4', 'error'), (
            sysmeta['xloud_live_vcpus'], sysmeta['xloud_current_vcpus'],
            sysmeta['xloud_last_status']))
        self.assertEqual(3, self._observed()[0].online)
        self.set_amounts.assert_called_with(
            self.ctxt, self.instance, vcpus=4, memory_mb=1024,
            client=self.manager.reportclient)

    def test_agent_that_does_not_answer_ends_in_error(self):
        self._with_agent()
        self.domain.guestVcpus.side_effect = fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError, 'agent not connected',
            error_code=fakelibvirt.VIR_ERR_AGENT_UNRESPONSIVE,
            error_message='agent not connected')
        self.adjuster.adjust(self.ctxt, self.instance, 4, None, True, 1)
        self.assertIn('the guest agent did not answer: agent not connected',
                      self._event_error().format_message())
        self.assertEqual('4', self.instance.system_metadata[
            'xloud_live_vcpus'])
        vcpus = self._observed()[0]
        self.assertIsNone(vcpus.online)
        self.assertIn('agent not connected', vcpus.reason)

    def test_no_agent_increase_says_the_guest_must_online_them(self):
        self.adjuster.adjust(self.ctxt, self.instance, 4, None, True, 1)
        self.assertIsNone(self._event_error())
        sysmeta = self.instance.system_metadata
        self.assertEqual(('success', adjust.ONLINE_THEMSELVES), (
            sysmeta['xloud_last_status'], sysmeta['xloud_last_message']))
        self.domain.guestVcpus.assert_not_called()
        self.domain.setGuestVcpus.assert_not_called()
        # Neither for a decrease.
        self._live(4, 1024)
        self.instance.system_metadata['xloud_adjust_seq'] = '2'
        self.adjuster.adjust(self.ctxt, self.instance, 3, None, True, 2)
        self.assertNotIn('xloud_last_message', sysmeta)

    def test_agent_decrease_takes_vcpus_offline_before_the_unplug(self):
        self._with_agent()
        self._live(4, 1024)
        order = mock.Mock()
        order.attach_mock(self.domain.setGuestVcpus, 'setGuestVcpus')
        order.attach_mock(self.set_vcpus, 'set_vcpus')
        self.adjuster.adjust(self.ctxt, self.instance, 2, None, True, 1)
        self.assertIsNone(self._event_error())
        self.assertEqual([
            mock.call.setGuestVcpus('2-3', 0),
            mock.call.set_vcpus(self.manager.driver, self.instance, 2,
                                decrease=True)], order.mock_calls)
        self.assertEqual('2', self.instance.system_metadata[
            'xloud_live_vcpus'])
        self.assertEqual(2, self._observed()[0].online)

    def test_agent_decrease_refused_by_the_guest_leaves_libvirt(self):
        self._with_agent()
        self._live(4, 1024)
        self.domain.setGuestVcpus.side_effect = fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError, 'busy', error_message='busy')
        self.adjuster.adjust(self.ctxt, self.instance, 2, None, True, 1)
        self.assertIn('could not bring vCPUs 2-3 offline: busy',
                      self._event_error().format_message())
        self.set_vcpus.assert_not_called()
        self.assertEqual('4', self.instance.system_metadata[
            'xloud_live_vcpus'])

    def test_unsafe_shrink_is_refused_without_force(self):
        self._live(2, 4096)
        self.guest.uses_mb = 3000
        self.adjuster.adjust(self.ctxt, self.instance, None, 1024, True, 1)
        message = self._event_error().format_message()
        self.assertEqual(
            'not lowered to 1024 MiB: the guest uses 3032 MiB of its 4096 '
            'MiB (1064 MiB usable); 1024 MiB leaves less than the 128 MiB '
            'margin: the smallest safe target is 3160 MiB; "force": true '
            'lowers it anyway', message)
        self.set_memory.assert_not_called()
        self.assertEqual('4096', self.instance.system_metadata[
            'xloud_live_memory_mb'])

    def test_unsafe_shrink_is_applied_with_force(self):
        self._live(2, 4096)
        self.guest.uses_mb = 3000
        self.adjuster.adjust(self.ctxt, self.instance, None, 1024, True, 1,
                             force=True)
        self.assertIsNone(self._event_error())
        self.set_memory.assert_called_once_with(
            self.manager.driver, self.instance, 1024)
        self.assertEqual(('1024', '1024'), (
            self.instance.system_metadata['xloud_live_memory_mb'],
            self.instance.system_metadata['xloud_current_memory_mb']))

    def test_shrink_margin_option(self):
        self._live(2, 4096)
        self.guest.uses_mb = 900
        self.flags(memory_shrink_margin_mb=100, group='xloud')
        self.adjuster.adjust(self.ctxt, self.instance, None, 1024, True, 1)
        self.assertIn('the smallest safe target is 1032 MiB',
                      self._event_error().format_message())
        self.flags(memory_shrink_margin_mb=92, group='xloud')
        self.instance.system_metadata['xloud_adjust_seq'] = '2'
        self.adjuster.adjust(self.ctxt, self.instance, None, 1024, True, 2)
        self.assertIsNone(self._event_error())

    def test_balloon_that_stays_high_ends_in_error(self):
        self.flags(balloon_timeout=7, group='xloud')
        self._live(2, 4096)
        self.guest.floor_mb = 3072
        self.adjuster.adjust(self.ctxt, self.instance, None, 1024, True, 1)
        self.assertEqual(
            'the guest has 3072 MiB, not 1024 MiB, after 7 s: its balloon '
            'did not reach the target',
            self._event_error().format_message())
        # Waited for it, bounded.
        self.assertAlmostEqual(7, self.clock.slept, delta=0.001)
        sysmeta = self.instance.system_metadata
        # The records and placement follow what the guest has; the boot
        # values are not the target either.
        self.assertEqual(('3072', 'error'), (
            sysmeta['xloud_live_memory_mb'], sysmeta['xloud_last_status']))
        self.assertNotIn('xloud_current_memory_mb', sysmeta)
        self.assertEqual(3072, self._observed()[1].actual_mb)
        self.set_amounts.assert_called_with(
            self.ctxt, self.instance, vcpus=2, memory_mb=3072,
            client=self.manager.reportclient)

    def test_balloon_reached_after_a_while(self):
        self._live(2, 4096)
        reads = []

        def slow(*args):
            # The guest gives the memory back on the third read.
            reads.append(1)
            stats = FakeGuest.memory_stats(self.guest)
            if len(reads) < 3:
                stats['actual'] = 4096 * units.Ki
            return stats
        self.domain.memoryStats.side_effect = slow
        self.adjuster.adjust(self.ctxt, self.instance, None, 2048, True, 1)
        self.assertIsNone(self._event_error())
        self.assertEqual('2048', self.instance.system_metadata[
            'xloud_live_memory_mb'])
        self.assertGreater(self.clock.slept, 0)

    def test_an_increase_waits_for_the_guest_to_take_the_memory(self):
        # Recorded and observed only once the balloon gave it: a reading
        # taken at once showed the old size on a real guest.
        self._live(2, 1024)
        reads = []

        def slow(*args):
            reads.append(1)
            stats = FakeGuest.memory_stats(self.guest)
            if len(reads) < 3:
                stats['actual'] = 1024 * units.Ki
            return stats
        self.domain.memoryStats.side_effect = slow
        self.adjuster.adjust(self.ctxt, self.instance, None, 2048, True, 1)
        self.assertIsNone(self._event_error())
        self.assertGreater(self.clock.slept, 0)
        self.assertEqual(2048, self._observed()[1].actual_mb)

    def test_an_increase_the_guest_does_not_take_ends_in_error(self):
        self.flags(balloon_timeout=5, group='xloud')
        self._live(2, 1024)
        self.domain.memoryStats.side_effect = lambda *args: {
            'actual': 1536 * units.Ki, 'available': 1504 * units.Ki,
            'usable': 1400 * units.Ki}
        self.adjuster.adjust(self.ctxt, self.instance, None, 2048, True, 1)
        self.assertEqual(
            'the guest has 1536 MiB, not 2048 MiB, after 5 s: its balloon '
            'did not reach the target',
            self._event_error().format_message())
        self.assertEqual('1536', self.instance.system_metadata[
            'xloud_live_memory_mb'])
        self.set_amounts.assert_called_with(
            self.ctxt, self.instance, vcpus=2, memory_mb=1536,
            client=self.manager.reportclient)

    def test_guest_memory(self):
        self.guest.memory_mb = 2048
        seen = self.adjuster.guest_memory(self.ctxt, self.instance)
        self.assertEqual({'actual_mb', 'available_mb', 'usable_mb', 'source',
                          'observed_at', 'reason'}, set(seen))
        self.assertEqual((2048, 2016, 1916, records.SOURCE_BALLOON, None), (
            seen['actual_mb'], seen['available_mb'], seen['usable_mb'],
            seen['source'], seen['reason']))

    def test_notifications_carry_the_observed_values(self):
        self.flags(notification_format='versioned', group='notifications')
        notifier = self.useFixture(nova_fixtures.NotificationFixture(self))
        self._with_agent()
        self.adjuster.adjust(self.ctxt, self.instance, 3, 2048, True, 1)
        end = [n for n in notifier.versioned_notifications
               if n['event_type'] == 'xloud_adjust.update.end']
        self.assertEqual(1, len(end))
        payload = end[0]['payload']
        self.assertEqual('1.1', payload['nova_object.version'])
        data = payload['nova_object.data']
        self.assertEqual((3, 2048, 1916), (
            data['observed_vcpus'], data['observed_memory_mb'],
            data['observed_usable_mb']))


class LibvirtAdjustTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.host.libvirt', fakelibvirt))
        self.domain = mock.Mock()
        self.driver = mock.Mock()
        self.driver._host.get_guest.return_value._domain = self.domain
        self.instance = mock.Mock(uuid=UUID)

    def test_flags_are_live_and_config(self):
        # Also without persist: a soft reboot relaunches the guest from the
        # libvirt config, and must keep what the records show.
        libvirt_adjust.set_vcpus(self.driver, self.instance, 3, False)
        live = fakelibvirt.VIR_DOMAIN_AFFECT_LIVE
        both = live | fakelibvirt.VIR_DOMAIN_AFFECT_CONFIG
        self.domain.setVcpusFlags.assert_called_once_with(3, both)
        libvirt_adjust.set_memory(self.driver, self.instance, 2048)
        self.domain.setMemoryFlags.assert_called_once_with(2048 * 1024, both)

    def _error(self, message, code=fakelibvirt.VIR_ERR_INTERNAL_ERROR):
        return fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError, message, error_code=code,
            error_message=message)

    def test_errors_carry_libvirt_message(self):
        self.domain.setVcpusFlags.side_effect = self._error('no hotplug')
        e = self.assertRaises(libvirt_adjust.AdjustFailed,
                              libvirt_adjust.set_vcpus, self.driver,
                              self.instance, 3, False)
        self.assertEqual('libvirt could not set 3 vCPUs: no hotplug',
                         e.format_message())
        self.domain.setMemoryFlags.side_effect = self._error('no balloon')
        e = self.assertRaises(libvirt_adjust.AdjustFailed,
                              libvirt_adjust.set_memory, self.driver,
                              self.instance, 512)
        self.assertIn('512 MiB: no balloon', e.format_message())

    def _qemu_has(self, count):
        qemu = mock.Mock()
        qemu.qemuMonitorCommand.return_value = json.dumps(
            {'return': [{'cpu-index': i} for i in range(count)]})
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.libvirt_adjust._libvirt_qemu',
            return_value=qemu))
        return qemu

    def _unplug_times_out(self, libvirt_counts):
        self.domain.setVcpusFlags.side_effect = [
            self._error('vcpu unplug request timed out',
                        fakelibvirt.VIR_ERR_OPERATION_TIMEOUT), 0]
        self.domain.vcpusFlags.return_value = libvirt_counts

    def test_decrease_timeout_asks_qemu(self):
        self._unplug_times_out(libvirt_counts=2)
        qemu = self._qemu_has(2)
        self.assertEqual(2, libvirt_adjust.set_vcpus(
            self.driver, self.instance, 2, True))
        qemu.qemuMonitorCommand.assert_called_once_with(
            self.domain, '{"execute": "query-cpus-fast"}', 0)
        self.domain.vcpusFlags.assert_called_once_with(
            fakelibvirt.VIR_DOMAIN_AFFECT_LIVE)
        self.domain.setVcpusFlags.assert_called_with(
            2, fakelibvirt.VIR_DOMAIN_AFFECT_CONFIG)

    def test_decrease_timeout_guest_kept_some(self):
        self._unplug_times_out(libvirt_counts=3)
        self._qemu_has(3)
        self.assertEqual(3, libvirt_adjust.set_vcpus(
            self.driver, self.instance, 2, True))
        # The config follows what the guest really kept.
        self.domain.setVcpusFlags.assert_called_with(
            3, fakelibvirt.VIR_DOMAIN_AFFECT_CONFIG)

    def test_decrease_timeout_with_stale_libvirt_count(self):
        self._unplug_times_out(libvirt_counts=3)
        self._qemu_has(2)
        e = self.assertRaises(libvirt_adjust.VcpusUnsettled,
                              libvirt_adjust.set_vcpus, self.driver,
                              self.instance, 2, True)
        self.assertEqual({'present': 2, 'counted': 3},
                         {k: e.kwargs[k] for k in ('present', 'counted')})
        self.assertIn('the guest has 2 (as QEMU reports) but libvirt still '
                      'counts 3', e.format_message())
        # QEMU's count is the truth the next boot starts from.
        self.domain.setVcpusFlags.assert_called_with(
            2, fakelibvirt.VIR_DOMAIN_AFFECT_CONFIG)

    def test_decrease_timeout_without_qemu_monitor(self):
        self._unplug_times_out(libvirt_counts=3)
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.libvirt_adjust._libvirt_qemu',
            return_value=None))
        e = self.assertRaises(libvirt_adjust.VcpusUnsettled,
                              libvirt_adjust.set_vcpus, self.driver,
                              self.instance, 2, True)
        self.assertIsNone(e.kwargs['present'])
        self.assertIn('QEMU cannot be asked', e.format_message())
        # Nothing is written from a count nobody can vouch for.
        self.assertEqual(1, self.domain.setVcpusFlags.call_count)

    def test_qemu_monitor_error_means_unknown(self):
        qemu = self._qemu_has(2)
        qemu.qemuMonitorCommand.side_effect = self._error('no monitor')
        self.assertIsNone(libvirt_adjust.vcpus_in_qemu(self.domain))

    def test_increase_timeout_is_an_error(self):
        self.domain.setVcpusFlags.side_effect = self._error(
            'timed out', fakelibvirt.VIR_ERR_OPERATION_TIMEOUT)
        self.assertRaises(libvirt_adjust.AdjustFailed,
                          libvirt_adjust.set_vcpus, self.driver,
                          self.instance, 4, False)

    def test_balloon(self):
        self.flags(virt_type='kvm', mem_stats_period_seconds=10,
                   group='libvirt')
        self.assertTrue(libvirt_adjust.has_memory_balloon())
        self.flags(mem_stats_period_seconds=0, group='libvirt')
        self.assertFalse(libvirt_adjust.has_memory_balloon())
        self.flags(virt_type='lxc', mem_stats_period_seconds=10,
                   group='libvirt')
        self.assertFalse(libvirt_adjust.has_memory_balloon())


class PlacementTestCase(test.NoDBTestCase):

    ALLOCATION = {
        'allocations': {RP: {'generation': 5, 'resources': {
            'VCPU': 2, 'MEMORY_MB': 1024, 'DISK_GB': 1}}},
        'consumer_generation': 3, 'project_id': 'p', 'user_id': 'u'}

    def setUp(self):
        super().setUp()
        self.ctxt = context.get_admin_context()
        self.client = mock.Mock()
        self.client.get.return_value = self._response(200, self.ALLOCATION)
        self.client.put.return_value = self._response(204)
        self.instance = mock.Mock(uuid=UUID, host='compute1')

    @staticmethod
    def _response(status, body=None):
        response = mock.Mock(status_code=status, text=str(body))
        response.json.return_value = body
        return response

    @staticmethod
    def _error(code, detail):
        return {'errors': [{'status': 409, 'code': code, 'title': 'Conflict',
                            'detail': detail}]}

    def _set_memory(self, error=placement.PlacementError):
        return self.assertRaises(error, placement.set_amounts, self.ctxt,
                                 self.instance, memory_mb=8192,
                                 client=self.client)

    def test_set(self):
        self.assertEqual(
            placement.Allocation(changed=True, vcpus=3, memory_mb=1024),
            placement.set_amounts(self.ctxt, self.instance, vcpus=3,
                                  client=self.client))
        self.client.get.assert_called_once_with(
            '/allocations/%s' % UUID, version='1.28',
            global_request_id=self.ctxt.global_id)
        self.client.put.assert_called_once_with(
            '/allocations/%s' % UUID, {
                'allocations': {RP: {'resources': {
                    'VCPU': 3, 'MEMORY_MB': 1024, 'DISK_GB': 1}}},
                'consumer_generation': 3, 'project_id': 'p',
                'user_id': 'u'},
            version='1.28', global_request_id=self.ctxt.global_id)

    def test_after_an_evacuation_the_servers_own_node_is_changed(self):
        # Until the source's compute comes back, the evacuated server's
        # allocation holds its source host too.
        source = {'generation': 7, 'resources': {
            'VCPU': 2, 'MEMORY_MB': 1024, 'DISK_GB': 1}}
        get_node = self.useFixture(fixtures.MockPatch(
            'nova.objects.ComputeNode.get_by_host_and_nodename',
            return_value=mock.Mock(uuid=RP))).mock
        for first in (True, False):
            get_node.reset_mock()
            allocation = dict(self.ALLOCATION, allocations=dict(
                [(uuids.source, source), (RP, self.ALLOCATION[
                    'allocations'][RP])][::1 if first else -1]))
            self.client.get.return_value = self._response(200, allocation)
            self.assertTrue(placement.set_amounts(
                self.ctxt, self.instance, vcpus=3,
                client=self.client).changed)
            get_node.assert_called_once_with(self.ctxt, 'compute1',
                                             self.instance.node)
            written = self.client.put.call_args[0][1]['allocations']
            self.assertEqual({'VCPU': 3, 'MEMORY_MB': 1024, 'DISK_GB': 1},
                             written[RP]['resources'])
            self.assertEqual(source['resources'],
                             written[uuids.source]['resources'])

    def test_one_holder_needs_no_node_lookup(self):
        get_node = self.useFixture(fixtures.MockPatch(
            'nova.objects.ComputeNode.get_by_host_and_nodename')).mock
        placement.set_amounts(self.ctxt, self.instance, vcpus=3,
                              client=self.client)
        get_node.assert_not_called()

    def test_only_increase(self):
        # What the allocation holds is returned as read: the compute
        # compares it with what the guest ends with.
        self.assertEqual(
            placement.Allocation(changed=False, vcpus=2, memory_mb=1024),
            placement.set_amounts(self.ctxt, self.instance, vcpus=1,
                                  memory_mb=1024, only_increase=True,
                                  client=self.client))
        self.client.put.assert_not_called()

    def test_an_allocation_without_the_classes_holds_none(self):
        self.client.get.return_value = self._response(200, {
            'allocations': {}, 'consumer_generation': None})
        self.assertEqual(
            placement.Allocation(changed=False, vcpus=None, memory_mb=None),
            placement.set_amounts(self.ctxt, self.instance, vcpus=3,
                                  client=self.client))
        self.client.put.assert_not_called()

    def test_no_room_gives_placements_reason(self):
        self.client.put.return_value = self._response(409, self._error(
            'placement.undefined_code',
            "409 Conflict\n\nUnable to allocate inventory: Unable to create "
            "allocation for 'MEMORY_MB' on resource provider 'rp'. The "
            "requested amount would exceed the capacity.  "))
        e = self._set_memory(placement.PlacementRefused)
        self.assertEqual(
            'Placement cannot set MEMORY_MB=8192 for server %s on host '
            'compute1: Unable to allocate inventory: Unable to create '
            "allocation for 'MEMORY_MB' on resource provider 'rp'. The "
            'requested amount would exceed the capacity.' % UUID,
            e.format_message())
        self.client.put.assert_called_once()

    def test_generation_conflicts_are_retried_from_a_fresh_read(self):
        self.useFixture(fixtures.MockPatch('time.sleep'))
        conflict = self._response(409, self._error(
            'placement.concurrent_update', 'consumer generation conflict'))
        self.client.put.side_effect = [conflict, conflict,
                                       self._response(204)]
        self.assertTrue(placement.set_amounts(
            self.ctxt, self.instance, memory_mb=8192,
            client=self.client).changed)
        self.assertEqual(3, self.client.get.call_count)
        self.client.put.side_effect = None
        self.client.put.return_value = conflict
        e = self._set_memory(placement.PlacementBusy)
        self.assertIn('kept changing during %d attempts' %
                      placement.MAX_ATTEMPTS, e.format_message())

    def test_unreachable(self):
        for method in ('get', 'put'):
            getattr(self.client, method).side_effect = (
                ks_exc.ConnectFailure('no route'))
            e = self._set_memory(placement.PlacementUnavailable)
            self.assertIn('placement could not be reached',
                          e.format_message())
            self.assertNotIn('ConnectFailure', e.format_message())
            getattr(self.client, method).side_effect = None

    def test_failing(self):
        self.client.put.return_value = self._response(500, {'errors': [
            {'status': 500, 'title': 'Internal Server Error',
             'detail': 'database gone'}]})
        e = self._set_memory(placement.PlacementUnavailable)
        self.assertIn('HTTP 500 to the allocation write: database gone',
                      e.format_message())
        self.client.get.return_value = self._response(503, None)
        e = self._set_memory(placement.PlacementUnavailable)
        self.assertIn('HTTP 503 to the allocation read', e.format_message())

    def _room_answers(self, inventories, usages, allocation=None):
        answers = {
            '/allocations/%s' % UUID: self._response(
                200, allocation or self.ALLOCATION),
            '/resource_providers/%s/inventories' % RP: self._response(
                200, {'inventories': inventories,
                      'resource_provider_generation': 5}),
            '/resource_providers/%s/usages' % RP: self._response(
                200, {'usages': usages, 'resource_provider_generation': 5}),
        }
        self.client.get.side_effect = lambda url, **kw: answers[url]

    INVENTORIES = {
        'VCPU': {'total': 8, 'reserved': 0, 'allocation_ratio': 2.0,
                 'max_unit': 8, 'min_unit': 1, 'step_size': 1},
        'MEMORY_MB': {'total': 8192, 'reserved': 512,
                      'allocation_ratio': 1.0, 'max_unit': 8192,
                      'min_unit': 1, 'step_size': 1},
        'DISK_GB': {'total': 100, 'reserved': 0, 'allocation_ratio': 1.0,
                    'max_unit': 100, 'min_unit': 1, 'step_size': 1}}

    def test_room_reads_only(self):
        self._room_answers(self.INVENTORIES, {'VCPU': 10, 'MEMORY_MB': 6144,
                                              'DISK_GB': 20})
        found = placement.room(self.ctxt, self.instance, client=self.client)
        self.assertEqual({
            'VCPU': placement.Room(capacity=16, used=10, held=2, max_unit=8),
            'MEMORY_MB': placement.Room(capacity=7680, used=6144,
                                        held=1024, max_unit=8192)}, found)
        self.assertEqual(
            ['/allocations/%s' % UUID,
             '/resource_providers/%s/inventories' % RP,
             '/resource_providers/%s/usages' % RP],
            [c[0][0] for c in self.client.get.call_args_list])
        self.client.put.assert_not_called()
        self.client.post.assert_not_called()
        self.client.delete.assert_not_called()

    def test_room_of_a_provider_without_the_classes(self):
        self._room_answers({'DISK_GB': self.INVENTORIES['DISK_GB']}, {})
        found = placement.room(self.ctxt, self.instance, client=self.client)
        self.assertEqual({}, found)
        self.assertEqual('host has no VCPU inventory in placement',
                         placement.room_refusal(found, 'VCPU', 3))

    def test_room_unavailable(self):
        self.client.get.return_value = self._response(503, None)
        e = self.assertRaises(placement.PlacementUnavailable, placement.room,
                              self.ctxt, self.instance, client=self.client)
        self.assertIn('HTTP 503 to the allocation read', e.format_message())
        self.client.get.side_effect = ks_exc.ConnectFailure('no route')
        e = self.assertRaises(placement.PlacementUnavailable, placement.room,
                              self.ctxt, self.instance, client=self.client)
        self.assertIn('placement could not be reached', e.format_message())
        # A read after the allocation failing names it.
        self.client.get.side_effect = None
        self._room_answers(self.INVENTORIES, {})
        answers = self.client.get.side_effect

        def failing(url, **kwargs):
            if url.endswith('/usages'):
                return self._response(500, None)
            return answers(url, **kwargs)
        self.client.get.side_effect = failing
        e = self.assertRaises(placement.PlacementUnavailable, placement.room,
                              self.ctxt, self.instance, client=self.client)
        self.assertIn('HTTP 500 to the usage read', e.format_message())

    def test_room_refusal(self):
        found = {
            'VCPU': placement.Room(capacity=16, used=14, held=2, max_unit=8),
            'MEMORY_MB': placement.Room(capacity=7680, used=7168, held=1024,
                                        max_unit=4096)}
        # What the server holds counts as its own.
        self.assertIsNone(placement.room_refusal(found, 'VCPU', 4))
        self.assertEqual('host has 2 VCPU free of 16, 3 more needed',
                         placement.room_refusal(found, 'VCPU', 5))
        self.assertEqual('placement allows at most 8 VCPU for one server on '
                         'this host (max_unit)',
                         placement.room_refusal(found, 'VCPU', 9))
        self.assertIsNone(placement.room_refusal(found, 'MEMORY_MB', 1536))
        self.assertEqual('host has 512 MEMORY_MB free of 7680, 1024 more '
                         'needed',
                         placement.room_refusal(found, 'MEMORY_MB', 2048))
        # Over-used (a lowered ratio): no negative room.
        found['VCPU'] = placement.Room(capacity=8, used=10, held=2,
                                       max_unit=None)
        self.assertEqual('host has 0 VCPU free of 8, 1 more needed',
                         placement.room_refusal(found, 'VCPU', 3))

    def test_room_refusal_nothing_more_needed(self):
        # What the server already holds fits, even on an over-used host.
        found = {'VCPU': placement.Room(capacity=8, used=10, held=2,
                                        max_unit=None)}
        self.assertIsNone(placement.room_refusal(found, 'VCPU', 2))
        self.assertIsNone(placement.room_refusal(found, 'VCPU', 1))


class ApplyRecordsHookTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.flavor = make_flavor(minimum_cpu='2', minimum_memory='1024')
        self.instance = fake_instance.fake_instance_obj(
            context.get_admin_context(), flavor=self.flavor)
        # nova-compute's listener, as create_endpoint registers it.
        self.listener = mock.Mock()
        self.useFixture(fixtures.MockPatchObject(
            libvirt_adjust, '_boot_listener', self.listener))
        self.stored = {}

        def update(ctxt, instance, change, *args):
            # What the change does to the stored records.
            view = records.View(self.stored, flavor=self.flavor)
            change(view, *args)
        self.update = self.useFixture(fixtures.MockPatch(
            'nova_xloud.store.update', side_effect=update)).mock

    def _sysmeta(self, **values):
        self.instance.system_metadata = dict(values)
        self.stored = dict(values)

    def test_entry_point(self):
        entry_points = [ep for ep in metadata.entry_points(
            group='nova.virt.libvirt.guest_config_hooks')
            if ep.name == 'xloud_adjust_records']
        self.assertEqual(1, len(entry_points))
        self.assertIs(libvirt_adjust.apply_records, entry_points[0].load())

    def test_new_boot_forgets_live_values(self):
        self._sysmeta(xloud_current_vcpus='3', xloud_current_memory_mb='2048',
                      xloud_current_flavorid='xl-id', xloud_live_vcpus='4',
                      xloud_live_memory_mb='4096', xloud_live_flavorid='xl-id')
        libvirt_adjust.apply_records(self.instance, self.flavor, None,
                                     mock.sentinel.guest)
        self.assertEqual({'xloud_current_vcpus': '3',
                          'xloud_current_memory_mb': '2048',
                          'xloud_current_flavorid': 'xl-id'},
                         self.instance.system_metadata)
        # Stored at once, only our records.
        self.assertEqual(self.instance.system_metadata, self.stored)
        self.update.assert_called_once_with(
            mock.ANY, self.instance, libvirt_adjust._forget_for_new_boot,
            self.flavor)
        # The non-persisted values are undone: nova-compute is told, so
        # that placement follows.
        self.listener.assert_called_once_with(
            mock.ANY, self.instance,
            resources.Resources(vcpus=3, memory_mb=2048))

    def test_a_rescue_keeps_the_live_values(self):
        values = dict(xloud_current_vcpus='3', xloud_current_memory_mb='2048',
                      xloud_current_flavorid='xl-id', xloud_live_vcpus='4',
                      xloud_live_memory_mb='4096', xloud_live_flavorid='xl-id')
        self._sysmeta(**values)
        self.instance.task_state = task_states.RESCUING
        libvirt_adjust.apply_records(self.instance, self.flavor, None,
                                     mock.sentinel.guest)
        self.assertEqual(values, self.instance.system_metadata)
        self.update.assert_not_called()
        self.listener.assert_not_called()

    def test_persisted_live_values_leave_placement(self):
        self._sysmeta(xloud_current_vcpus='3', xloud_current_memory_mb='2048',
                      xloud_current_flavorid='xl-id', xloud_live_vcpus='3',
                      xloud_live_memory_mb='2048', xloud_live_flavorid='xl-id')
        libvirt_adjust.apply_records(self.instance, self.flavor, None,
                                     mock.sentinel.guest)
        self.listener.assert_not_called()

    def test_other_flavor_drops_persisted_values(self):
        self._sysmeta(xloud_current_vcpus='3', xloud_current_memory_mb='2048',
                      xloud_current_flavorid='old-id', other='kept')
        libvirt_adjust.apply_records(self.instance, self.flavor, None,
                                     mock.sentinel.guest)
        self.assertEqual({'other': 'kept'}, self.instance.system_metadata)
        self.assertEqual({'other': 'kept'}, self.stored)
        self.listener.assert_not_called()

    def test_nothing_to_drop_costs_nothing(self):
        self._sysmeta(xloud_current_vcpus='3', xloud_current_memory_mb='2048',
                      xloud_current_flavorid='xl-id')
        libvirt_adjust.apply_records(self.instance, self.flavor, None,
                                     mock.sentinel.guest)
        self.update.assert_not_called()
        self.listener.assert_not_called()

    def test_placement_failure_does_not_stop_the_boot(self):
        self.listener.side_effect = placement.PlacementRefused(
            amounts='VCPU=2', uuid='u', host='h', reason='full')
        self._sysmeta(xloud_live_vcpus='3', xloud_live_memory_mb='1024',
                      xloud_live_flavorid='xl-id')
        libvirt_adjust.apply_records(self.instance, self.flavor, None,
                                     mock.sentinel.guest)
        # The live values are gone and the stored allocation is marked
        # stale, with why, for the drift repair.
        self.assertEqual({}, self.instance.system_metadata)
        stale = self.stored.pop(records.ALLOCATION_STALE)
        self.assertEqual({}, self.stored)
        self.assertIn('not set to the 2 vCPUs and 1024 MiB of the new '
                      'boot', stale)
        self.assertIn('full', stale)

    def test_without_a_listener_the_allocation_is_marked_stale(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.virt.libvirt_adjust._boot_listener', None))
        self._sysmeta(xloud_live_vcpus='3', xloud_live_memory_mb='1024',
                      xloud_live_flavorid='xl-id')
        libvirt_adjust.apply_records(self.instance, self.flavor, None,
                                     mock.sentinel.guest)
        self.assertIn('nova-compute did not ask to be told of new boots',
                      self.stored[records.ALLOCATION_STALE])

    def test_the_last_registered_listener_is_told(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.virt.libvirt_adjust._boot_listener', None))
        first, second = mock.Mock(), mock.Mock()
        libvirt_adjust.on_boot_change(first)
        libvirt_adjust.on_boot_change(second)
        self._sysmeta(xloud_live_vcpus='3', xloud_live_memory_mb='1024',
                      xloud_live_flavorid='xl-id')
        libvirt_adjust.apply_records(self.instance, self.flavor, None,
                                     mock.sentinel.guest)
        first.assert_not_called()
        second.assert_called_once_with(
            mock.ANY, self.instance,
            resources.Resources(vcpus=2, memory_mb=1024))

    def test_the_compute_listener_sets_the_allocation(self):
        self.instance.system_metadata = {
            records.ALLOCATION_STALE: 'earlier failure'}
        now = resources.Resources(vcpus=2, memory_mb=1024)
        manager = mock.Mock()
        with mock.patch.object(placement, 'set_amounts') as set_amounts:
            adjust.Adjuster(manager).allocation_after_boot(
                mock.sentinel.ctxt, self.instance, now)
        set_amounts.assert_called_once_with(
            mock.sentinel.ctxt, self.instance, vcpus=2, memory_mb=1024,
            client=manager.reportclient)
        # Right again: the old mark goes.
        self.update.assert_called_once_with(
            mock.sentinel.ctxt, self.instance,
            records.clear_allocation_stale)

    def test_a_failed_clearing_write_is_not_a_placement_failure(self):
        self.instance.system_metadata = {
            records.ALLOCATION_STALE: 'earlier failure'}
        self.update.side_effect = RuntimeError('conductor gone')
        with mock.patch.object(placement, 'set_amounts') as set_amounts:
            adjust.Adjuster(mock.Mock()).allocation_after_boot(
                mock.sentinel.ctxt, self.instance,
                resources.Resources(vcpus=2, memory_mb=1024))
        set_amounts.assert_called_once()

    def _revert_a_move(self, **sysmeta):
        """The revert's boot with sysmeta; the listener gets (3, 2048)."""
        self._sysmeta(xloud_current_vcpus='3', xloud_current_memory_mb='2048',
                      xloud_current_flavorid='xl-id', **sysmeta)
        self.instance.task_state = task_states.RESIZE_REVERTING
        libvirt_adjust.apply_records(self.instance, self.flavor, None,
                                     mock.sentinel.guest)
        self.listener.assert_called_once_with(
            mock.ANY, self.instance,
            resources.Resources(vcpus=3, memory_mb=2048))

    def test_a_reverted_move_tells_the_listener(self):
        self._revert_a_move(xloud_live_vcpus='4', xloud_live_memory_mb='4096',
                            xloud_live_flavorid='xl-id')
        self.assertNotIn(records.ALLOCATION_STALE, self.stored)

    def test_a_reverted_move_marks_a_failed_allocation_stale(self):
        self.listener.side_effect = placement.PlacementUnavailable(
            amounts='VCPU=3', uuid='u', host='h',
            reason='placement could not be reached')
        self._revert_a_move()
        self.assertIn('not set to the 3 vCPUs and 2048 MiB of the new boot',
                      self.stored[records.ALLOCATION_STALE])
