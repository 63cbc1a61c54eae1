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

"""Live adjust end to end with the libvirt driver on fakelibvirt.

The API, conductor, scheduler, placement and a libvirt compute run in
process; the adjust API is served through the router plugin hook, the cast
reaches our endpoint through the compute RPC endpoint hook, and the guest
is changed with setVcpusFlags/setMemoryFlags on an extended fakelibvirt.
"""

import json
import os
import threading
import time

import fixtures
import nova.conf
from nova import context as nova_context
from nova import objects
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client
from oslo_concurrency import lockutils
from oslo_utils import units

from nova_xloud.api import compat
from nova_xloud.api.schemas import adjust as schema
from nova_xloud.compute import adjust as compute_adjust
from nova_xloud.compute import endpoint
from nova_xloud import records
from nova_xloud.testing import base
from tests import readme

URL = base.ADJUST_URL
EVENT = base.ADJUST_EVENT


class LiveAdjustTestBase(base.LiveAdjustBase):

    def _refused(self, status, server, body, *texts, api=None):
        api = api or self.admin_api
        e = self.assertRaises(client.OpenStackApiException, api.api_post,
                              URL % server['id'], body,
                              check_response_status=[202])
        self.assertEqual(status, e.response.status_code, e.response.text)
        for text in texts:
            self.assertIn(text, e.response.text)
        return e

    def _show(self, server, api=None):
        body = (api or self.admin_api).api_get(URL % server['id']).body
        compat.validate_response(schema.show_response, body)
        return body['adjustment']

    def _adjust(self, server, result='Success', **body):
        response = self._post(server, body)
        compat.validate_response(schema.adjust_response, response)
        adjustment = response['adjustment']
        action, event = self._wait_event(server, adjustment['request_id'],
                                         result)
        self.assertEqual('xloud-adjust', action['action'])
        return adjustment, event

    def _current(self, server):
        shown = self._show(server)
        return shown['current_vcpus'], shown['current_memory_mb']

    def _assert_state(self, server, expected, persisted=True):
        """Guest, records (GET) and placement agree on expected."""
        self.assertEqual(expected, self._live(server))
        self.assertEqual(expected, self._current(server))
        self.assertEqual(expected, self._allocation(server))
        self.assertEqual(persisted, self._show(server)['persisted'])

    def _persisted_then_transient(self):
        """A server persisted at (3, 2048), then live at (4, 4096) only."""
        server = self._boot()
        self._adjust(server, current_vcpus=3, current_memory_mb=2048)
        self._adjust(server, current_vcpus=4, current_memory_mb=4096,
                     persist=False)
        return server

    def _bigger_flavor(self):
        return self._flavor(vcpu=6, memory_mb=6144, minimum_cpu='3',
                            minimum_memory='2048')

    def _assert_booted_with(self, server, expected):
        """The domain was defined with expected, and everything agrees."""
        vcpus, memory_mb = expected
        self.assertEqual((str(vcpus), str(memory_mb * units.Ki)),
                         self._boot_xml(server))
        self._assert_state(server, expected)


class LiveAdjustTestCase(LiveAdjustTestBase):

    def test_show_after_boot(self):
        server = self._boot()
        shown = self._show(server)
        self.assertEqual({
            'server_id': server['id'],
            'minimum_vcpus': 2, 'current_vcpus': 2, 'maximum_vcpus': 4,
            'minimum_memory_mb': 1024, 'current_memory_mb': 1024,
            'maximum_memory_mb': 4096, 'persisted': True,
            'last_request_id': None, 'last_status': None,
            'last_message': None, 'requested_vcpus': None,
            'requested_memory_mb': None, 'allocation_stale': None,
            'observed': {
                'vcpus': {'online': None, 'source': None,
                          'observed_at': None,
                          'reason': records.NOT_OBSERVED},
                'memory': {'actual_mb': None, 'available_mb': None,
                           'usable_mb': None, 'source': None,
                           'observed_at': None,
                           'reason': records.NOT_OBSERVED}}}, shown)
        self._assert_state(server, (2, 1024))

    def test_up_and_down_both_resources(self):
        server = self._boot()
        adjustment, event = self._adjust(server, current_vcpus=4,
                                         current_memory_mb=3072)
        self.assertEqual({'server_id': server['id'],
                          'request_id': adjustment['request_id'],
                          'current_vcpus': 4, 'current_memory_mb': 3072,
                          'persist': True}, adjustment)
        self._assert_state(server, (4, 3072))
        self.assertEqual((4, 3072), self._config(server))
        shown = self._show(server)
        # No guest agent in the image: the guest must online the vCPUs.
        self.assertEqual((adjustment['request_id'], 'success',
                          compute_adjust.ONLINE_THEMSELVES),
                         (shown['last_request_id'], shown['last_status'],
                          shown['last_message']))
        self.assertEqual(self.computes['compute1'].host, event['host'])

        # Down again, one resource at a time, strings of digits accepted.
        self._adjust(server, current_vcpus='3')
        self._assert_state(server, (3, 3072))
        adjustment, _ = self._adjust(server, current_memory_mb=2048)
        self.assertEqual(3, adjustment['current_vcpus'])
        self._assert_state(server, (3, 2048))
        self.assertEqual((3, 2048), self._config(server))
        self.assertEqual(
            {'VCPU': 3, 'MEMORY_MB': 2048, 'DISK_GB': 1},
            self._get_provider_usages(self.rp_uuid))

    def test_flavor_without_minimum_uses_defaults(self):
        server = self._boot(self._flavor())
        shown = self._show(server)
        self.assertEqual((1, 4, 4, 256, 4096, 4096), (
            shown['minimum_vcpus'], shown['current_vcpus'],
            shown['maximum_vcpus'], shown['minimum_memory_mb'],
            shown['current_memory_mb'], shown['maximum_memory_mb']))
        self._adjust(server, current_vcpus=1, current_memory_mb=256)
        self._assert_state(server, (1, 256))

    def _adjust_notifications(self):
        return [(n['event_type'], n['priority'], n['publisher_id'],
                 n['payload']['nova_object.data'])
                for n in self.notifier.versioned_notifications
                if n['event_type'].startswith('xloud_adjust.')]

    def test_notifications_follow_the_values(self):
        self.flags(notification_format='versioned', group='notifications')
        server = self._boot()
        adjustment, _ = self._adjust(server, current_vcpus=3,
                                     current_memory_mb=2048)
        (start_type, start_prio, publisher, start), (
            end_type, end_prio, _, end) = self._adjust_notifications()
        self.assertEqual(('xloud_adjust.update.start', 'INFO'),
                         (start_type, start_prio))
        self.assertEqual(('xloud_adjust.update.end', 'INFO'),
                         (end_type, end_prio))
        self.assertEqual('nova-compute:compute1', publisher)
        for payload in (start, end):
            self.assertEqual(server['id'], payload['server_id'])
            self.assertEqual(adjustment['request_id'],
                             payload['request_id'])
            self.assertEqual((2, 1024), (payload['old_vcpus'],
                                         payload['old_memory_mb']))
            self.assertEqual((3, 2048), (payload['new_vcpus'],
                                         payload['new_memory_mb']))
            self.assertTrue(payload['persist'])
        self.assertIsNone(end['message'])

    def test_error_notification_carries_the_message(self):
        self.flags(notification_format='versioned', group='notifications')
        server = self._boot()
        self.libvirt_ext.inject_error('setMemoryFlags',
                                      message='internal error: balloon')
        self._adjust(server, result='Error', current_vcpus=3,
                     current_memory_mb=2048)
        start, error = self._adjust_notifications()
        self.assertEqual(('xloud_adjust.update.error', 'ERROR'), error[:2])
        # The vCPUs were changed before the memory failed: the error
        # notification says what the guest really has.
        self.assertEqual((3, 1024), (error[3]['new_vcpus'],
                                     error[3]['new_memory_mb']))
        self.assertIn('internal error: balloon', error[3]['message'])

    def test_no_notifications_when_nova_sends_no_versioned_ones(self):
        self.flags(notification_format='unversioned', group='notifications')
        server = self._boot()
        self._adjust(server, current_vcpus=3)
        self.assertEqual([], self._adjust_notifications())

    def _api_ref_sample(self, name):
        path = os.path.join(os.path.dirname(__file__), '..', '..',
                            'api-ref', 'source', 'samples', name)
        with open(path) as handle:
            return json.load(handle)

    def test_api_reference_samples_are_what_the_api_does(self):
        shown = self._api_ref_sample('show-resp.json')['adjustment']
        # The sample's guest has the agent and uses 902 MiB.
        server = self._boot(self._flavor(
            vcpu=shown['maximum_vcpus'], memory_mb=shown['maximum_memory_mb'],
            minimum_cpu=str(shown['minimum_vcpus']),
            minimum_memory=str(shown['minimum_memory_mb'])),
            image=self._image_with_agent())
        self.libvirt_ext.guest_uses(self._domain(server), 902)
        ids = {'server_id': server['id']}
        response = self._post(server, self._api_ref_sample('adjust-req.json'))
        ids['request_id'] = response['adjustment']['request_id']
        sample = self._api_ref_sample('adjust-resp.json')
        sample['adjustment'].update(ids)
        self.assertEqual(sample, response)
        self._wait_event(server, ids['request_id'], 'Success')
        shown.update(server_id=server['id'],
                     last_request_id=ids['request_id'])
        actual = self._show(server)
        for kind in ('vcpus', 'memory'):
            # The time of the observation is the one thing a sample
            # cannot know.
            observed_at = actual['observed'][kind]['observed_at']
            self.assertRegex(observed_at,
                             r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
            shown['observed'][kind]['observed_at'] = observed_at
        self.assertEqual(shown, actual)

    def test_libvirt_error(self):
        server = self._boot()
        self.libvirt_ext.inject_error(
            'setVcpusFlags', message='internal error: unable to execute '
                                     'QEMU command device_add')
        adjustment, event = self._adjust(server, result='Error',
                                         current_vcpus=4,
                                         current_memory_mb=2048)
        self.assertIn('unable to execute QEMU command device_add',
                      event['details'])
        shown = self._show(server)
        self.assertEqual('error', shown['last_status'])
        self.assertIn('device_add', shown['last_message'])
        # Nothing changed and nothing claims otherwise; the API raised the
        # allocation for the increase and the compute put it back.
        self._assert_state(server, (2, 1024))
        server = self.api.get_server(server['id'])
        self.assertEqual('ACTIVE', server['status'])
        fault = objects.InstanceFault.get_latest_for_instance(
            nova_context.get_admin_context(), server['id'])
        self.assertIn('device_add', fault.message)

    def test_memory_error_after_vcpus_keeps_vcpus(self):
        server = self._boot()
        self.libvirt_ext.inject_error('setMemoryFlags',
                                      message='internal error: balloon')
        self._adjust(server, result='Error', current_vcpus=3,
                     current_memory_mb=2048)
        self._assert_state(server, (3, 1024))

    def test_vcpu_unplug_timeout_reads_back(self):
        server = self._boot()
        self._adjust(server, current_vcpus=4)
        # QEMU reports a timeout although the guest let go.
        self.libvirt_ext.inject_error(
            'setVcpusFlags', message='operation timed out: vcpu unplug '
            'request timed out', code=fakelibvirt.VIR_ERR_OPERATION_TIMEOUT,
            apply_first=True)
        self._adjust(server, current_vcpus=2)
        self._assert_state(server, (2, 1024))
        self.assertEqual((2, 1024), self._config(server))

    def test_vcpu_unplug_timeout_guest_kept_them(self):
        server = self._boot()
        self._adjust(server, current_vcpus=4)
        self.libvirt_ext.inject_error(
            'setVcpusFlags', message='operation timed out: vcpu unplug '
            'request timed out', code=fakelibvirt.VIR_ERR_OPERATION_TIMEOUT)
        _, event = self._adjust(server, result='Error', current_vcpus=2)
        self.assertIn('the guest has 4 vCPUs, not 2', event['details'])
        self._assert_state(server, (4, 1024))

    def _unplug_times_out_leaving_libvirt_at_three(self):
        """A server at 3 vCPUs whose unplug to 2 times out in libvirt."""
        server = self._boot()
        self._adjust(server, current_vcpus=3)
        self.libvirt_ext.inject_unplug_timeout(released=True)
        _, event = self._adjust(server, result='Error', current_vcpus=2)
        return server, event

    def test_vcpu_unplug_timeout_records_what_qemu_has(self):
        server, event = self._unplug_times_out_leaving_libvirt_at_three()
        self.assertIn('the guest has 2 (as QEMU reports) but libvirt still '
                      'counts 3', event['details'])
        domain = self._domain(server)
        self.assertEqual(2, self.libvirt_ext.qemu_vcpus(domain))
        # libvirt's own count is stale: it is not what the records follow.
        self.assertEqual(3, self._live(server)[0])
        self.assertEqual((2, 1024), self._current(server))
        self.assertEqual((2, 1024), self._allocation(server))
        self.assertEqual((2, 1024), self._config(server))
        self.assertEqual('error', self._show(server)['last_status'])

    def test_vcpu_changes_refused_while_libvirt_count_is_stale(self):
        server, _ = self._unplug_times_out_leaving_libvirt_at_three()
        self._refused(409, server, {'current_vcpus': 3},
                      'lost count of the vCPUs', 'hard rebooted')
        self._adjust(server, current_memory_mb=2048)
        self.assertEqual((2, 2048), self._current(server))
        self.assertEqual([], self.libvirt_ext.crashes)

    def test_hard_reboot_settles_a_stale_vcpu_count(self):
        server, _ = self._unplug_times_out_leaving_libvirt_at_three()
        self._reboot_server(server, hard=True)
        self._assert_booted_with(server, (2, 1024))
        self._adjust(server, current_vcpus=4)
        self._assert_state(server, (4, 1024))
        self.assertEqual([], self.libvirt_ext.crashes)

    def test_vcpu_unplug_timeout_without_qemu_answer(self):
        server = self._boot()
        self._adjust(server, current_vcpus=3)
        self.libvirt_ext.qemu_monitor = False
        self.libvirt_ext.inject_unplug_timeout(released=True)
        _, event = self._adjust(server, result='Error', current_vcpus=2)
        self.assertIn('QEMU cannot be asked', event['details'])
        # Nothing claims fewer vCPUs than the guest may have.
        self.assertEqual((3, 1024), self._current(server))
        self.assertEqual((3, 1024), self._allocation(server))
        self._refused(409, server, {'current_vcpus': 4},
                      'lost count of the vCPUs')
        server = self._stop_server(server)
        server = self._start_server(server)
        self._adjust(server, current_vcpus=4)
        self.assertEqual([], self.libvirt_ext.crashes)

    def test_readme_curl_examples_are_what_the_api_answers(self):
        flavor = self._flavor(vcpu=8, memory_mb=16384, minimum_cpu='2',
                              minimum_memory='2048')
        server = self._boot(flavor_id=flavor)
        post = readme.block_from('curl -s -X POST')
        body = json.loads(next(line for line in post if '-d ' in line)
                          .split("-d '", 1)[1].rstrip("'"))
        answer = json.loads(''.join(post[post.index('HTTP 202') + 1:]))
        response = self._post(server, body)
        _assert_like_readme(self, answer, response)
        self._wait_event(server, response['adjustment']['request_id'],
                         'Success')
        get = readme.block_from('curl -s "$NOVA/os-xloud-adjust/')
        _assert_like_readme(self, json.loads(''.join(get[1:])),
                            self._show_body(server))

    def _show_body(self, server):
        return self.admin_api.api_get(URL % server['id']).body

    def test_hard_reboot_persisted(self):
        server = self._boot()
        self._adjust(server, current_vcpus=3, current_memory_mb=3072)
        self._reboot_server(server, hard=True)
        self._assert_booted_with(server, (3, 3072))

    def test_hard_reboot_not_persisted(self):
        server = self._persisted_then_transient()
        self._assert_state(server, (4, 4096), persisted=False)
        self._reboot_server(server, hard=True)
        self._assert_booted_with(server, (3, 2048))

    def test_soft_reboot_keeps_what_is_not_persisted(self):
        server = self._persisted_then_transient()
        # A soft reboot relaunches the guest from the libvirt config: it
        # must come back with what the records show.
        self.assertEqual((4, 4096), self._config(server))
        self._reboot_server(server, hard=False)
        self._assert_state(server, (4, 4096), persisted=False)

    def test_pause_and_suspend_keep_what_is_not_persisted(self):
        server = self._persisted_then_transient()
        for stop, start, status in (('pause', 'unpause', 'PAUSED'),
                                    ('suspend', 'resume', 'SUSPENDED')):
            self.admin_api.post_server_action(server['id'], {stop: None})
            self._wait_for_state_change(server, status)
            self.admin_api.post_server_action(server['id'], {start: None})
            self._wait_for_state_change(server, 'ACTIVE')
            self._assert_state(server, (4, 4096), persisted=False)
        # What a hard reboot brings back is still the persisted values.
        self._reboot_server(server, hard=True)
        self._assert_state(server, (3, 2048))

    def _rescue(self, server):
        # The fake image backend makes no instance directory, where the
        # driver saves the domain for unrescue.
        os.makedirs(os.path.join(nova.conf.CONF.instances_path,
                                 server['id']), exist_ok=True)
        self.admin_api.post_server_action(server['id'], {'rescue': None})
        self._wait_for_state_change(server, 'RESCUE')

    def test_rescue_and_unrescue_keep_what_is_not_persisted(self):
        server = self._persisted_then_transient()
        self._rescue(server)
        # The rescue domain starts with what the guest had.
        self.assertEqual(('4', str(4096 * units.Ki)), self._boot_xml(server))
        self._assert_state(server, (4, 4096), persisted=False)
        self.admin_api.post_server_action(server['id'], {'unrescue': None})
        self._wait_for_state_change(server, 'ACTIVE')
        self._assert_state(server, (4, 4096), persisted=False)
        self._reboot_server(server, hard=True)
        self._assert_booted_with(server, (3, 2048))

    def test_rescue_of_a_server_never_adjusted(self):
        server = self._boot()
        self._rescue(server)
        self._assert_booted_with(server, (2, 1024))
        self.admin_api.post_server_action(server['id'], {'unrescue': None})
        self._wait_for_state_change(server, 'ACTIVE')
        self._assert_state(server, (2, 1024))

    def test_host_reboot_resume(self):
        server = self._boot()
        self._adjust(server, current_vcpus=3, current_memory_mb=2048)
        self._adjust(server, current_vcpus=4, persist=False)
        # The host reboots: the guest is gone and the compute restarts.
        self._domain(server).destroy()
        self.flags(resume_guests_state_on_host_boot=True)
        self.restart_compute_service('compute1')
        server = self._wait_for_state_change(server, 'ACTIVE')
        self._assert_booted_with(server, (3, 2048))

    def test_stop_start(self):
        server = self._boot()
        self._adjust(server, current_vcpus=3)
        self._adjust(server, current_memory_mb=3072, persist=False)
        server = self._stop_server(server)
        server = self._start_server(server)
        self._assert_state(server, (3, 1024))

    def test_shutoff(self):
        server = self._boot()
        server = self._stop_server(server)
        self._refused(409, server, {'current_vcpus': 3, 'persist': False},
                      'only a persisted adjustment')
        self._adjust(server, current_vcpus=3, current_memory_mb=1536)
        self.assertEqual((3, 1536), self._current(server))
        self.assertEqual((3, 1536), self._allocation(server))
        server = self._start_server(server)
        self._assert_booted_with(server, (3, 1536))

    def test_resize_revert_restores_persisted_values(self):
        self._allow_resize_here()
        server = self._boot()
        self._adjust(server, current_vcpus=3, current_memory_mb=3072)
        new_flavor = self._bigger_flavor()
        server = self._resize_server(server, new_flavor)
        self.assertEqual(('3', str(2048 * units.Ki)),
                         self._boot_xml(server))
        self._revert_resize(server)
        server = self._wait_for_state_change(server, 'ACTIVE')
        self._assert_booted_with(server, (3, 3072))

    def test_resize_back_does_not_resurrect_old_values(self):
        self._allow_resize_here()
        flavor_a = self._flavor(minimum_cpu='2', minimum_memory='1024')
        server = self._boot(flavor_a)
        self._adjust(server, current_vcpus=3, current_memory_mb=3072)
        flavor_b = self._bigger_flavor()
        server = self._resize_server(server, flavor_b)
        self._confirm_resize(server)
        server = self._resize_server(server, flavor_a)
        self._confirm_resize(server)
        self._assert_booted_with(server, (2, 1024))

    def test_rebuild_keeps_persisted_values(self):
        server = self._boot()
        self._adjust(server, current_vcpus=3, current_memory_mb=3072)
        self._adjust(server, current_vcpus=4, persist=False)
        server = self._rebuild_server(
            server, '155d900f-4e14-4e4c-a73d-069cbf4541e6')
        self._assert_booted_with(server, (3, 3072))

    def test_shelve_unshelve_does_not_fail(self):
        # Moves come in a later issue; until then they must not fail.
        self.api = self.admin_api  # shelve offload is admin only
        server = self._boot()
        self._adjust(server, current_vcpus=3, current_memory_mb=3072)
        self.flags(shelved_offload_time=-1)
        server = self._shelve_server(server, 'SHELVED')
        self._shelve_offload_server(server)
        server = self._unshelve_server(server)
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual(('3', str(3072 * units.Ki)),
                         self._boot_xml(server))

    def test_resize_drops_persisted_values(self):
        self._allow_resize_here()
        server = self._boot()
        self._adjust(server, current_vcpus=4, current_memory_mb=4096)
        new_flavor = self._bigger_flavor()
        server = self._resize_server(server, new_flavor)
        self._confirm_resize(server)
        self._assert_booted_with(server, (3, 2048))
        self._adjust(server, current_vcpus=6)
        self._assert_state(server, (6, 2048))

    def _sequence(self, server):
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'],
            expected_attrs=['system_metadata'])
        return records.sequence(instance)

    def test_concurrent_adjustments_last_wins(self):
        server = self._boot()
        wanted = [(3, 1024), (4, 1536), (2, 2048), (3, 2560)]
        request_ids = [None] * len(wanted)

        def post(index):
            vcpus, memory = wanted[index]
            request_ids[index] = self._post(
                server, {'current_vcpus': vcpus,
                         'current_memory_mb': memory}
            )['adjustment']['request_id']

        # Hold the compute's per-server lock so that all four adjustments
        # (casts, run as calls by the test RPC fixture) queue up there.
        lock = lockutils.internal_lock('xloud-adjust-%s' % server['id'])
        threads = []
        with lock:
            for index in range(len(wanted)):
                thread = threading.Thread(target=post, args=(index,))
                thread.start()
                threads.append(thread)
                deadline = time.monotonic() + 20
                while self._sequence(server) < index + 1:
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.01)
        for thread in threads:
            thread.join()
        results = [self._wait_event(server, rid)[1] for rid in request_ids]
        self.assertEqual('Success', results[-1]['result'])
        self._assert_state(server, (3, 2560))
        shown = self._show(server)
        self.assertEqual((request_ids[-1], 'success'),
                         (shown['last_request_id'], shown['last_status']))
        # The older ones were dropped, each finishing its event.
        for event in results[:-1]:
            self.assertEqual('Error', event['result'])
            self.assertIn('superseded by a newer adjustment',
                          event['details'])
        self.assertEqual(
            1, len([c for c in self.libvirt_ext.calls
                    if c[0] == 'setVcpusFlags']))

    def test_sequential_adjustments_apply_in_order(self):
        server = self._boot()
        for vcpus, memory in ((4, 4096), (2, 1024), (3, 2048)):
            self._adjust(server, current_vcpus=vcpus,
                         current_memory_mb=memory)
            self._assert_state(server, (vcpus, memory))


class LiveAdjustMoveTestCase(LiveAdjustTestBase):
    """Moves come in a later issue; until then they must not fail."""

    def test_cold_migrate(self):
        self.api = self.admin_api  # migrate is admin only
        server = self._boot()
        self._adjust(server, current_vcpus=3, current_memory_mb=3072)
        self.start_compute('compute2')
        self._no_disk_to_move()
        self._migrate_server(server)
        server = self._wait_for_state_change(server, 'VERIFY_RESIZE')
        self._confirm_resize(server)
        server = self.admin_api.get_server(server['id'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual('compute2', server['OS-EXT-SRV-ATTR:host'])

    def test_evacuate(self):
        server = self._boot()
        self._adjust(server, current_vcpus=3, current_memory_mb=3072)
        self.start_compute('compute2')
        self.computes['compute1'].stop()
        service = self.admin_api.get_services(host='compute1',
                                              binary='nova-compute')[0]
        self.admin_api.put_service_force_down(service['id'], True)
        server = self._evacuate_server(server, expected_host='compute2',
                                       expected_state='ACTIVE')
        self.assertEqual('ACTIVE', server['status'])


class LiveAdjustRefusedTestCase(LiveAdjustTestBase):

    def setUp(self):
        super().setUp()
        self.server = self._boot()

    def _assert_untouched(self):
        self._assert_state(self.server, (2, 1024))
        self.assertEqual([], [a for a in self.admin_api.get_instance_actions(
            self.server['id']) if a['action'] == 'xloud-adjust'])

    def test_bad_bodies(self):
        for body, text in (
                ({'current_vcpus': True}, 'current_vcpus'),
                ({'current_vcpus': 2.0}, 'current_vcpus'),
                ({'current_memory_mb': 1.5}, 'current_memory_mb'),
                ({'current_vcpus': -1}, 'current_vcpus'),
                ({'current_vcpus': 0}, 'current_vcpus'),
                ({'current_vcpus': '0'}, 'current_vcpus'),
                ({'current_vcpus': '2a'}, 'current_vcpus'),
                ({'current_vcpus': 2, 'persist': 'yes'}, 'persist'),
                ({'current_vcpus': 2, 'cpus': 2}, 'cpus'),
                ({'persist': True}, 'current_vcpus'),
                ([2], 'not of type'),
                ('2', 'not of type')):
            self._refused(400, self.server, body, text)
        for raw, text in (('{}', 'current_vcpus'), ('', 'not of type'),
                          ('null', 'not of type')):
            e = self.assertRaises(
                client.OpenStackApiException, self.admin_api.api_request,
                URL % self.server['id'], method='POST', body=raw,
                headers={'Content-Type': 'application/json'},
                check_response_status=[202])
            self.assertEqual(400, e.response.status_code)
            self.assertIn(text, e.response.text)
        e = self.assertRaises(
            client.OpenStackApiException, self.admin_api.api_request,
            URL % self.server['id'], method='POST',
            check_response_status=[202])
        self.assertEqual(400, e.response.status_code)
        self._assert_untouched()

    def test_show_refuses_query_parameters(self):
        e = self.assertRaises(client.OpenStackApiException,
                              self.admin_api.api_get,
                              URL % self.server['id'] + '?verbose=1')
        self.assertEqual(400, e.response.status_code)
        self.assertIn('verbose', e.response.text)

    def test_out_of_range(self):
        self._refused(400, self.server, {'current_vcpus': 5},
                      'current_vcpus 5', 'from 2 to 4')
        self._refused(400, self.server, {'current_vcpus': 1},
                      'current_vcpus 1', 'from 2 to 4')
        self._refused(400, self.server, {'current_memory_mb': 4097},
                      'current_memory_mb 4097', 'from 1024 to 4096')
        self._refused(400, self.server, {'current_memory_mb': 512},
                      'current_memory_mb 512', 'from 1024 to 4096')
        self._assert_untouched()

    def test_member_forbidden(self):
        e = self._refused(403, self.server, {'current_vcpus': 3},
                          api=self.api)
        self.assertIn('os-xloud-adjust:update', e.response.text)
        e = self.assertRaises(client.OpenStackApiException, self.api.api_get,
                              URL % self.server['id'])
        self.assertEqual(403, e.response.status_code)
        self._assert_untouched()

    def test_unknown_server(self):
        self._refused(404, {'id': '8b8f5d4c-11c4-4ebb-8f0b-6c4a07a4c1d2'},
                      {'current_vcpus': 3})
        e = self.assertRaises(
            client.OpenStackApiException, self.admin_api.api_get,
            URL % '8b8f5d4c-11c4-4ebb-8f0b-6c4a07a4c1d2')
        self.assertEqual(404, e.response.status_code)

    def test_locked(self):
        self.admin_api.post_server_action(self.server['id'], {'lock': None})
        self._refused(409, self.server, {'current_vcpus': 3}, 'locked')
        self._assert_untouched()

    def test_task_in_progress(self):
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, self.server['id'])
        instance.task_state = 'rebooting'
        instance.save()
        self._refused(409, self.server, {'current_vcpus': 3},
                      'task in progress')
        instance.task_state = None
        instance.save()
        self._assert_untouched()

    def test_paused(self):
        self.admin_api.post_server_action(self.server['id'], {'pause': None})
        self._wait_for_state_change(self.server, 'PAUSED')
        self._refused(409, self.server, {'current_vcpus': 3}, 'PAUSED')

    def test_compute_down(self):
        # Even with what the compute said a moment ago in the cache.
        self._adjust(self.server, current_vcpus=3)
        self.computes['compute1'].stop()
        self.admin_api.put_service_force_down(
            self.admin_api.get_services(binary='nova-compute')[0]['id'],
            True)
        self._refused(409, self.server, {'current_vcpus': 3}, 'is down')

    def test_what_a_compute_supports_is_asked_once_per_period(self):
        asked = []
        real = endpoint.XloudComputeEndpoint.describe_host

        def describe_host(endpoint_self, context):
            asked.append(context.request_id)
            return real(endpoint_self, context)
        self.useFixture(fixtures.MockPatchObject(
            endpoint.XloudComputeEndpoint, 'describe_host', describe_host))
        self._adjust(self.server, current_vcpus=3)
        self._adjust(self.server, current_memory_mb=2048)
        self.assertEqual(1, len(asked))
        self.flags(compute_info_cache_seconds=0, group='xloud')
        self._adjust(self.server, current_vcpus=4)
        self._adjust(self.server, current_vcpus=2)
        self.assertEqual(3, len(asked))

    def test_no_memory_balloon(self):
        self.flags(mem_stats_period_seconds=0, group='libvirt')
        self._refused(409, self.server, {'current_memory_mb': 2048},
                      'no usable memory balloon')
        answer = self.admin_api.api_post(
            URL % self.server['id'], {'current_memory_mb': 2048,
                                      'current_vcpus': 3, 'dry_run': True},
            check_response_status=[200]).body['dry_run']
        self.assertIn('no usable memory balloon',
                      answer['current_memory_mb']['reasons'][0])
        self.assertTrue(answer['current_vcpus']['applicable'])
        self._adjust(self.server, current_vcpus=3)

    def test_full_host(self):
        self._leave_free_memory(512)
        self._refused(409, self.server, {'current_memory_mb': 2048},
                      'Placement cannot set MEMORY_MB=2048')
        self._assert_untouched()
        self._adjust(self.server, current_memory_mb=1536)
        self._assert_state(self.server, (2, 1536))


class LiveAdjustUnpatchedComputeTestCase(LiveAdjustTestBase):

    XLOUD_ENDPOINT = False

    def test_compute_without_endpoint(self):
        server = self._boot()
        self._refused(409, server, {'current_vcpus': 3},
                      'does not run nova-xloud')
        self.assertEqual([], self.libvirt_ext.calls)
        self.assertEqual([], [
            a for a in self.admin_api.get_instance_actions(server['id'])
            if a['action'] == 'xloud-adjust'])
        self.assertEqual((2, 1024), self._allocation(server))
        # GET needs no compute.
        self.assertEqual((2, 1024), self._current(server))

    def test_dry_run_names_the_compute_without_endpoint(self):
        server = self._boot()
        answer = self.admin_api.api_post(
            URL % server['id'], {'current_memory_mb': 2048,
                                 'dry_run': True},
            check_response_status=[200]).body['dry_run']
        self.assertFalse(answer['applicable'])
        self.assertEqual(
            ['The compute service on host compute1 does not run '
             'nova-xloud.'], answer['current_memory_mb']['reasons'])
        self.assertEqual([], self.libvirt_ext.calls)
        self.assertEqual((2, 1024), self._allocation(server))


class ComputeWithoutDatabaseTestBase(LiveAdjustTestBase):
    """nova-compute writes the records through nova-conductor."""

    WARNING = 'nova-conductor does not run nova-xloud'

    def setUp(self):
        super().setUp()
        self.conductor = self.useFixture(
            base.ComputeWithoutDatabaseFixture())


class LiveAdjustThroughConductorTestCase(ComputeWithoutDatabaseTestBase):

    def test_adjust_and_hard_reboot_write_through_the_conductor(self):
        server = self._boot()
        self._adjust(server, current_vcpus=4, current_memory_mb=3072)
        self._assert_state(server, (4, 3072))
        self._adjust(server, current_vcpus=3, current_memory_mb=2048,
                     persist=False)
        self._assert_state(server, (3, 2048), persisted=False)
        self.assertGreaterEqual(len(self.conductor.swaps), 4)
        before_reboot = len(self.conductor.swaps)
        # The rebuilt domain drops the live values: a write of the virt
        # layer, through the conductor too.
        self._reboot_server(server, hard=True)
        self._assert_state(server, (4, 3072))
        self.assertGreater(len(self.conductor.swaps), before_reboot)
        self.assertEqual({server['id']}, set(self.conductor.swaps))
        self.assertNotIn(self.WARNING, self.stdlog.logger.output)


class LiveAdjustConductorWithoutEndpointTestCase(
        ComputeWithoutDatabaseTestBase):

    XLOUD_CONDUCTOR_ENDPOINT = False

    def test_falls_back_to_load_and_save_and_warns_once(self):
        server = self._boot()
        self._adjust(server, current_vcpus=4, current_memory_mb=3072)
        self._adjust(server, current_vcpus=3)
        self._assert_state(server, (3, 3072))
        shown = self._show(server)
        self.assertEqual('success', shown['last_status'])
        self.assertEqual([], self.conductor.swaps)
        self.assertEqual(1, self.stdlog.logger.output.count(self.WARNING))


def _assert_like_readme(test, shown, actual):
    """actual has shown's keys and values; "abc-..." stands for any id."""
    test.assertEqual(set(shown), set(actual))
    for key, value in shown.items():
        if isinstance(value, dict):
            _assert_like_readme(test, value, actual[key])
        elif isinstance(value, str) and value.endswith('...'):
            test.assertIsInstance(actual[key], str, key)
            test.assertTrue(actual[key].startswith(
                'req-' if value.startswith('req-') else ''), key)
        else:
            test.assertEqual(value, actual[key], key)
