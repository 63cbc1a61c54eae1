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

"""What the guest really has, end to end on fakelibvirt.

The fake guest behaves as a Linux guest does (LiveResizeLibvirtFixture):
hot-plugged vCPUs stay offline until something brings them online, the QEMU
guest agent answers only when Nova gave the domain its channel (image
property ``hw_qemu_guest_agent=yes``), and the balloon statistics show what
the guest uses. The real cloud tier shows the same on a real guest.
"""

from nova import context as nova_context
from nova import objects
from nova.tests.functional.api import client
from oslo_utils import units

from nova_xloud.compute import adjust as compute_adjust
from nova_xloud.compute import drift
from nova_xloud import records
from nova_xloud.testing import base
from nova_xloud.testing import fakelibvirt


class GuestViewTestBase(base.LiveAdjustBase):

    AGENT = False

    def setUp(self):
        super().setUp()
        self.flags(notification_format='versioned', group='notifications')
        self.server = self._boot_guest()

    def _boot_guest(self):
        return self._boot(image=self._image_with_agent() if self.AGENT
                          else None)

    def _adjust(self, result='Success', **body):
        adjustment = self._post(self.server, body)['adjustment']
        return self._wait_event(self.server, adjustment['request_id'],
                                result)[1]

    def _show(self):
        return self.admin_api.api_get(
            base.ADJUST_URL % self.server['id']).body['adjustment']

    def _refused(self, status, body):
        error = self.assertRaises(
            client.OpenStackApiException, self.admin_api.api_post,
            base.ADJUST_URL % self.server['id'], body)
        self.assertEqual(status, error.response.status_code)
        return error.response.json()['conflictingRequest' if status == 409
                                     else 'badRequest']['message']

    def _dry_run(self, **body):
        return self.admin_api.api_post(
            base.ADJUST_URL % self.server['id'], dict(body, dry_run=True),
            check_response_status=[200]).body['dry_run']

    def _online(self):
        return self.libvirt_ext.guest_online(self._domain(self.server))

    def _calls(self, *names):
        return [call[0] for call in self.libvirt_ext.calls
                if call[0] in names]

    def _action_count(self):
        return len(self.admin_api.api_get(
            '/servers/%s/os-instance-actions' % self.server['id']
        ).body['instanceActions'])


class GuestAgentTestCase(GuestViewTestBase):
    """An image with hw_qemu_guest_agent=yes."""

    AGENT = True

    def test_boot_gives_the_domain_the_agent_channel(self):
        xml = self.libvirt_ext.defined_xml(self._domain(self.server))
        self.assertIn(fakelibvirt.AGENT_CHANNEL, xml)

    def test_increase_brings_the_new_vcpus_online(self):
        self.assertEqual(2, self._online())
        self._adjust(current_vcpus=4)
        self.assertEqual(4, self._online())
        self.assertEqual(['setVcpusFlags', 'setGuestVcpus'],
                         self._calls('setVcpusFlags', 'setGuestVcpus'))
        shown = self._show()
        self.assertEqual(4, shown['current_vcpus'])
        self.assertEqual(4, shown['requested_vcpus'])
        observed = shown['observed']['vcpus']
        self.assertEqual(4, observed['online'])
        self.assertEqual('guest-agent', observed['source'])
        self.assertIsNotNone(observed['observed_at'])
        self.assertIsNone(observed['reason'])
        self.assertEqual('success', shown['last_status'])
        self.assertIsNone(shown['last_message'])

    def test_decrease_takes_the_vcpus_offline_in_the_guest_first(self):
        self._adjust(current_vcpus=4)
        del self.libvirt_ext.calls[:]
        self._adjust(current_vcpus=2)
        self.assertEqual(['setGuestVcpus', 'setVcpusFlags'],
                         self._calls('setVcpusFlags', 'setGuestVcpus'))
        self.assertEqual(2, self._online())
        self.assertEqual(
            2, self.libvirt_ext.qemu_vcpus(self._domain(self.server)))
        self.assertEqual(2, self._show()['observed']['vcpus']['online'])

    def test_a_guest_refusing_to_offline_leaves_the_vcpus_plugged(self):
        self._adjust(current_vcpus=4)
        self.libvirt_ext.inject_error(
            'setGuestVcpus', 'internal error: guest refused to offline')
        event = self._adjust(result='Error', current_vcpus=2)
        self.assertIn('could not bring vCPUs 2-3 offline', event['details'])
        self.assertEqual(4, self._live(self.server)[0])
        self.assertEqual(4, self._online())
        shown = self._show()
        self.assertEqual(4, shown['current_vcpus'])
        self.assertEqual((4, 1024), self._allocation(self.server))

    def test_a_failed_unplug_brings_the_vcpus_back_online(self):
        self._adjust(current_vcpus=4)
        self.libvirt_ext.inject_error(
            'setVcpusFlags', 'internal error: unable to execute QEMU command '
            'device_del')
        event = self._adjust(result='Error', current_vcpus=2)
        self.assertIn('device_del', event['details'])
        self.assertEqual(4, self._live(self.server)[0])
        self.assertEqual(4, self._online())
        self.assertEqual(4, self._show()['observed']['vcpus']['online'])

    def test_agent_not_answering_ends_in_error_with_libvirt_count(self):
        self.libvirt_ext.agent_answers = False
        self.flags(guest_agent_timeout=1, group='xloud')
        event = self._adjust(result='Error', current_vcpus=3)
        self.assertIn('guest agent did not answer', event['details'])
        shown = self._show()
        # libvirt gave the guest the vCPU: the records and placement say
        # so, and the observation says the guest could not be asked.
        self.assertEqual(3, shown['current_vcpus'])
        self.assertEqual((3, 1024), self._allocation(self.server))
        observed = shown['observed']['vcpus']
        self.assertIsNone(observed['online'])
        self.assertIn('not responding', observed['reason'])

    def test_notifications_carry_the_observed_values(self):
        self._adjust(current_vcpus=3, current_memory_mb=2048)
        end = [n for n in self.notifier.versioned_notifications
               if n['event_type'] == 'xloud_adjust.update.end'][-1]
        payload = end['payload']['nova_object.data']
        self.assertEqual('1.1', end['payload']['nova_object.version'])
        self.assertEqual(3, payload['observed_vcpus'])
        self.assertEqual(2048, payload['observed_memory_mb'])
        self.assertEqual(2048 - 32 - 64, payload['observed_usable_mb'])

    def test_drift_repair_records_the_observation(self):
        self.assertEqual(records.NOT_OBSERVED,
                         self._show()['observed']['vcpus']['reason'])
        manager = self.computes[base.COMPUTE].manager
        task = dict(manager._periodic_tasks)[drift.TASK_NAME]
        task(manager, nova_context.get_admin_context())
        observed = self._show()['observed']
        self.assertEqual(2, observed['vcpus']['online'])
        self.assertEqual(1024, observed['memory']['actual_mb'])

    def test_a_new_boot_drops_the_observation(self):
        self._adjust(current_vcpus=3, persist=False)
        self.assertEqual(3, self._show()['observed']['vcpus']['online'])
        self._reboot_server(self.server, hard=True)
        shown = self._show()
        self.assertEqual(2, shown['current_vcpus'])
        self.assertEqual(records.NOT_OBSERVED,
                         shown['observed']['vcpus']['reason'])
        self.assertIsNone(shown['observed']['memory']['actual_mb'])


class NoGuestAgentTestCase(GuestViewTestBase):
    """The default image: no agent; the guest onlines vCPUs or not."""

    def test_increase_says_the_guest_must_online_them(self):
        self._adjust(current_vcpus=4)
        shown = self._show()
        self.assertEqual('success', shown['last_status'])
        self.assertEqual(compute_adjust.ONLINE_THEMSELVES,
                         shown['last_message'])
        self.assertEqual(4, shown['current_vcpus'])
        # A Linux guest without a udev rule keeps them offline.
        self.assertEqual(2, self._online())
        self.assertEqual([], self._calls('setGuestVcpus', 'guestVcpus'))
        observed = shown['observed']['vcpus']
        self.assertIsNone(observed['online'])
        self.assertIn('hw_qemu_guest_agent=yes', observed['reason'])

    def test_memory_is_observed_from_the_balloon_statistics(self):
        self._adjust(current_memory_mb=3072)
        memory = self._show()['observed']['memory']
        self.assertEqual({'actual_mb': 3072, 'available_mb': 3072 - 32,
                          'usable_mb': 3072 - 32 - 64,
                          'source': 'balloon-statistics', 'reason': None},
                         {key: memory[key] for key in (
                             'actual_mb', 'available_mb', 'usable_mb',
                             'source', 'reason')})


class SafeShrinkTestCase(GuestViewTestBase):

    def setUp(self):
        super().setUp()
        self._adjust(current_memory_mb=4096)
        self.domain = self._domain(self.server)
        del self.libvirt_ext.calls[:]

    def _unchanged(self, sequence):
        self.assertEqual([], self._calls('setMemoryFlags'))
        self.assertEqual(4096, self._live(self.server)[1])
        self.assertEqual((2, 4096), self._allocation(self.server))
        self.assertEqual(
            str(sequence), self._records()[records.SEQUENCE])

    def _records(self):
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), self.server['id'],
            expected_attrs=['system_metadata'])
        return instance.system_metadata

    def test_a_shrink_below_what_the_guest_uses_is_refused(self):
        self.libvirt_ext.guest_uses(self.domain, 3000)
        message = self._refused(409, {'current_memory_mb': 2048})
        # 4096 - (4096 - 32 - 3000) = 3032 used, + 128 margin.
        self.assertIn('current_memory_mb 2048 is not safe', message)
        self.assertIn('the guest uses 3032 MiB of its 4096 MiB', message)
        self.assertIn('the smallest safe target is 3160 MiB', message)
        self.assertIn('"force": true', message)
        self._unchanged(1)

    def test_the_margin_is_an_option(self):
        self.libvirt_ext.guest_uses(self.domain, 1800)
        self._refused(409, {'current_memory_mb': 1900})
        self.flags(memory_shrink_margin_mb=0, group='xloud')
        self._adjust(current_memory_mb=1900)
        self.assertEqual(1900, self._live(self.server)[1])

    def test_force_shrinks_anyway(self):
        self.libvirt_ext.guest_uses(self.domain, 3000)
        self._adjust(current_memory_mb=2048, force=True)
        self.assertEqual(2048, self._live(self.server)[1])
        self.assertEqual((2, 2048), self._allocation(self.server))

    def test_a_guest_without_statistics_is_refused_unless_forced(self):
        self.libvirt_ext.memory_stats = False
        message = self._refused(409, {'current_memory_mb': 2048})
        self.assertIn('reports no memory use', message)
        self._unchanged(1)
        self._adjust(current_memory_mb=2048, force=True)
        self.assertEqual(2048, self._show()['current_memory_mb'])

    def test_a_guest_that_keeps_its_memory_ends_in_error(self):
        self.flags(balloon_timeout=1, group='xloud')
        self.libvirt_ext.hold_balloon(self.domain, 3072 * units.Ki)
        event = self._adjust(result='Error', current_memory_mb=2048)
        self.assertIn('the guest has 3072 MiB, not 2048 MiB', event['details'])
        shown = self._show()
        self.assertEqual('error', shown['last_status'])
        self.assertEqual(3072, shown['current_memory_mb'])
        self.assertEqual(2048, shown['requested_memory_mb'])
        self.assertEqual(3072, shown['observed']['memory']['actual_mb'])
        self.assertEqual((2, 3072), self._allocation(self.server))
        self.assertFalse(shown['persisted'])

    def test_an_increase_needs_no_statistics(self):
        self._adjust(current_memory_mb=2048, force=True)
        self.libvirt_ext.memory_stats = False
        self._adjust(current_memory_mb=3072)
        self.assertEqual(3072, self._live(self.server)[1])


class DryRunTestCase(GuestViewTestBase):

    def _nothing_written(self, before):
        shown = self._show()
        self.assertEqual(before['last_request_id'], shown['last_request_id'])
        self.assertEqual(before['current_vcpus'], shown['current_vcpus'])
        self.assertEqual(before['requested_vcpus'],
                         shown['requested_vcpus'])
        self.assertEqual([], self._calls('setVcpusFlags', 'setMemoryFlags'))
        self.assertEqual((2, 1024), self._allocation(self.server))

    def test_an_applicable_request(self):
        before = self._show()
        actions = self._action_count()
        answer = self._dry_run(current_vcpus=3, current_memory_mb=2048)
        self.assertTrue(answer['applicable'])
        self.assertEqual({'requested': 3, 'current': 2, 'applicable': True,
                          'reasons': [],
                          'notes': [compute_adjust.ONLINE_THEMSELVES]},
                         answer['current_vcpus'])
        self.assertEqual({'requested': 2048, 'current': 1024,
                          'applicable': True, 'reasons': [], 'notes': []},
                         answer['current_memory_mb'])
        self._nothing_written(before)
        self.assertEqual(actions, self._action_count())

    def test_every_reason_is_listed(self):
        self.admin_api.post_server_action(self.server['id'], {'lock': None})
        before = self._show()
        answer = self._dry_run(current_vcpus=9, current_memory_mb=2048)
        self.assertFalse(answer['applicable'])
        vcpus = answer['current_vcpus']
        self.assertFalse(vcpus['applicable'])
        self.assertEqual(2, len(vcpus['reasons']), vcpus)
        self.assertIn('Invalid current_vcpus 9: it must be from 2 to 4',
                      vcpus['reasons'][0])
        self.assertIn('is locked', vcpus['reasons'][1])
        self.assertEqual(['Server %s is locked.' % self.server['id']],
                         answer['current_memory_mb']['reasons'])
        self._nothing_written(before)

    def test_a_host_without_room_says_how_much_it_has(self):
        self._leave_free_memory(512)
        answer = self._dry_run(current_memory_mb=2048)
        memory = answer['current_memory_mb']
        self.assertFalse(memory['applicable'])
        self.assertEqual(1, len(memory['reasons']), memory)
        self.assertIn('host has 512 MEMORY_MB free', memory['reasons'][0])
        self.assertIn('1024 more needed', memory['reasons'][0])
        # The real request is refused the same way.
        self._refused(409, {'current_memory_mb': 2048})

    def test_an_unsafe_shrink_is_listed_unless_forced(self):
        self._adjust(current_memory_mb=4096)
        self.libvirt_ext.guest_uses(self._domain(self.server), 3000)
        memory = self._dry_run(current_memory_mb=2048)['current_memory_mb']
        self.assertFalse(memory['applicable'])
        self.assertIn('the guest uses 3032 MiB', memory['reasons'][0])
        forced = self._dry_run(current_memory_mb=2048, force=True)
        self.assertTrue(forced['applicable'])
        self.assertEqual(4096, self._live(self.server)[1])

    def test_malformed_input_is_still_a_400(self):
        for body in ({'current_vcpus': 'x', 'dry_run': True},
                     {'current_vcpus': 3, 'dry_run': 'yes'},
                     {'current_vcpus': 3, 'force': 1}):
            self._refused(400, body)
