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

"""guest_view with a mock libvirt domain and a fake clock."""

from unittest import mock

import fixtures
from nova import test
from nova.tests.fixtures import libvirt as fakelibvirt
from oslo_utils.fixture import uuidsentinel as uuids

from nova_xloud import records
from nova_xloud.virt import guest_view
from nova_xloud.virt import libvirt_adjust


class FakeClock(object):
    """time.monotonic and time.sleep: sleeping moves the clock."""

    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def _error(message):
    return fakelibvirt.make_libvirtError(
        fakelibvirt.libvirtError, message,
        error_code=fakelibvirt.VIR_ERR_AGENT_UNRESPONSIVE,
        error_message=message)


class GuestViewTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.host.libvirt', fakelibvirt))
        self.clock = FakeClock()
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.guest_view.time', new=self.clock))
        self.flags(guest_agent_timeout=5, balloon_timeout=3, group='xloud')
        self.flags(virt_type='kvm', mem_stats_period_seconds=10,
                   group='libvirt')
        self.domain = mock.Mock()
        self.driver = mock.Mock()
        self.driver._host.get_guest.return_value._domain = self.domain
        self.instance = mock.Mock(uuid=uuids.instance)

    def _guest(self, vcpus, online):
        self.domain.guestVcpus.return_value = {
            'vcpus': vcpus, 'online': online, 'offlinable': ''}

    # guest_vcpus

    def test_guest_vcpus_parses_libvirts_strings(self):
        for vcpus, online, expected in (
                ('0-3', '0-1', ({0, 1, 2, 3}, {0, 1})),
                ('0,1,2', '0,2', ({0, 1, 2}, {0, 2})),
                ('0-1,3-4', '0-1,4', ({0, 1, 3, 4}, {0, 1, 4})),
                ('0', '0', ({0}, {0})),
                ('0-3', '', ({0, 1, 2, 3}, set()))):
            self._guest(vcpus, online)
            self.assertEqual(expected, guest_view.guest_vcpus(self.domain),
                             (vcpus, online))

    def test_guest_vcpus_missing_keys_are_empty(self):
        self.domain.guestVcpus.return_value = {}
        self.assertEqual((set(), set()), guest_view.guest_vcpus(self.domain))

    def test_agent_error_is_guest_agent_failed(self):
        self.domain.guestVcpus.side_effect = _error(
            'Guest agent is not responding')
        e = self.assertRaises(guest_view.GuestAgentFailed,
                              guest_view.guest_vcpus, self.domain)
        self.assertIsInstance(e, libvirt_adjust.AdjustFailed)
        self.assertEqual('the guest agent did not answer: Guest agent is '
                         'not responding', e.format_message())

    # bring_online

    def _learning_guest(self, known, online, errors=()):
        """A guest that learns one more vCPU per poll, up to 4.

        errors: agent errors of the first polls.
        """
        state = {'polls': 0, 'known': known, 'online': set(online)}
        errors = list(errors)

        def guest_vcpus(flags=0):
            state['polls'] += 1
            if errors:
                raise errors.pop(0)
            state['known'] = min(state['known'] + 1, 4)
            return {'vcpus': '0-%d' % (state['known'] - 1),
                    'online': ','.join(
                        str(cpu) for cpu in sorted(state['online']))}

        def set_guest_vcpus(cpumap, online, flags=0):
            cpus = {int(cpu) for cpu in cpumap.split(',')}
            if online:
                state['online'] |= cpus
            else:
                state['online'] -= cpus
            return 0
        self.domain.guestVcpus.side_effect = guest_vcpus
        self.domain.setGuestVcpus.side_effect = set_guest_vcpus
        return state

    def test_bring_online_waits_for_the_guest_then_onlines_the_offline(self):
        # Knows 2, then 3, then 4 vCPUs: 0 and 2 are online.
        state = self._learning_guest(1, {0, 2})
        self.assertEqual(4, guest_view.bring_online(self.driver,
                                                    self.instance, 4))
        # Only those offline, at once, after the guest knew them all.
        self.domain.setGuestVcpus.assert_called_once_with('1,3', 1)
        self.assertEqual([guest_view.POLL_INTERVAL] * 2, self.clock.slept)
        self.assertEqual({0, 1, 2, 3}, state['online'])

    def test_bring_online_retries_an_agent_not_up_yet(self):
        state = self._learning_guest(3, {0, 1, 2, 3}, errors=[
            _error('agent not connected'), _error('agent not connected')])
        self.assertEqual(4, guest_view.bring_online(self.driver,
                                                    self.instance, 4))
        self.assertEqual(4, state['polls'])
        self.domain.setGuestVcpus.assert_not_called()

    def test_bring_online_agent_never_answers(self):
        self.domain.guestVcpus.side_effect = _error('agent not connected')
        e = self.assertRaises(guest_view.GuestAgentFailed,
                              guest_view.bring_online, self.driver,
                              self.instance, 4)
        self.assertIn('agent not connected', e.format_message())
        # Bounded by guest_agent_timeout.
        self.assertAlmostEqual(5, sum(self.clock.slept), delta=0.001)

    def test_bring_online_nothing_offline(self):
        self._guest('0-3', '0-3')
        self.assertEqual(4, guest_view.bring_online(self.driver,
                                                    self.instance, 4))
        self.domain.setGuestVcpus.assert_not_called()
        self.assertEqual([], self.clock.slept)

    def test_bring_online_is_bounded(self):
        # A guest that never learns of the last vCPU: after the timeout
        # those it knows are brought online.
        self._guest('0-2', '0')
        with mock.patch.object(guest_view.LOG, 'warning') as warning:
            guest_view.bring_online(self.driver, self.instance, 4)
        self.domain.setGuestVcpus.assert_called_once_with('1-2', 1)
        self.assertAlmostEqual(5, sum(self.clock.slept), delta=0.001)
        self.assertIn('knows %(known)d vCPUs', warning.call_args[0][0])
        self.assertEqual(3, warning.call_args[0][1]['known'])

    def test_bring_online_agent_refuses(self):
        self._guest('0-3', '0-1')
        self.domain.setGuestVcpus.side_effect = _error('cannot online')
        e = self.assertRaises(guest_view.GuestAgentFailed,
                              guest_view.bring_online, self.driver,
                              self.instance, 4)
        self.assertEqual('the guest agent could not bring vCPUs 2-3 online: '
                         'cannot online', e.format_message())

    # take_offline

    def test_take_offline_the_highest(self):
        self._guest('0-5', '0-2,4-5')
        guest_view.take_offline(self.driver, self.instance, 2)
        self.domain.setGuestVcpus.assert_called_once_with('2,4-5', 0)

    def test_take_offline_nothing_to_do(self):
        self._guest('0-3', '0-1')
        guest_view.take_offline(self.driver, self.instance, 2)
        self.domain.setGuestVcpus.assert_not_called()

    def test_take_offline_agent_errors(self):
        self._guest('0-3', '0-3')
        self.domain.setGuestVcpus.side_effect = _error('busy')
        e = self.assertRaises(guest_view.GuestAgentFailed,
                              guest_view.take_offline, self.driver,
                              self.instance, 2)
        self.assertEqual('the guest agent could not bring vCPUs 2-3 '
                         'offline: busy', e.format_message())
        self.domain.guestVcpus.side_effect = _error('gone')
        self.assertRaises(guest_view.GuestAgentFailed,
                          guest_view.take_offline, self.driver,
                          self.instance, 2)

    # observe_vcpus

    def test_observe_vcpus(self):
        self._guest('0-3', '0-2')
        with mock.patch.object(records, 'has_guest_agent',
                               return_value=True):
            self.assertEqual(3, guest_view.online_vcpus(self.driver,
                                                        self.instance))
            seen = guest_view.observe_vcpus(self.driver, self.instance)
            self.assertEqual((3, records.SOURCE_GUEST_AGENT, None),
                             (seen.online, seen.source, seen.reason))
            self.domain.guestVcpus.side_effect = _error('not connected')
            seen = guest_view.observe_vcpus(self.driver, self.instance)
            self.assertEqual((None, None), (seen.online, seen.source))
            self.assertEqual('the guest agent did not answer: not connected',
                             seen.reason)
            self.driver._host.get_guest.side_effect = ValueError()
            self.assertEqual('ValueError', guest_view.observe_vcpus(
                self.driver, self.instance).reason)

    def test_observe_vcpus_without_agent_does_not_ask(self):
        with mock.patch.object(records, 'has_guest_agent',
                               return_value=False):
            seen = guest_view.observe_vcpus(self.driver, self.instance)
        self.assertEqual((None, guest_view.NO_AGENT),
                         (seen.online, seen.reason))
        self.domain.guestVcpus.assert_not_called()

    # memory_stats

    def test_memory_stats_rounding(self):
        # actual and available rounded up to whole MiB, usable down.
        self.domain.memoryStats.return_value = {
            'actual': 2 * 1024 * 1024, 'available': 2015 * 1024 + 1,
            'usable': 1800 * 1024 + 1023, 'unused': 5, 'last_update': 1}
        seen = guest_view.memory_stats(self.domain)
        self.assertEqual((2048, 2016, 1800, records.SOURCE_BALLOON, None),
                         (seen.actual_mb, seen.available_mb, seen.usable_mb,
                          seen.source, seen.reason))
        self.domain.memoryStats.return_value = {
            'actual': 1, 'available': 1024, 'usable': 1023}
        self.assertEqual((1, 1, 0), guest_view.memory_stats(self.domain)[:3])

    def test_memory_stats_missing_keys(self):
        # A guest whose balloon driver sent no statistics: actual only.
        self.domain.memoryStats.return_value = {'actual': 1048576}
        seen = guest_view.memory_stats(self.domain)
        self.assertEqual((1024, None, None, records.SOURCE_BALLOON),
                         seen[:4])
        self.assertIn('the guest reports no usable memory', seen.reason)
        for stats in ({}, None, {'actual': 'x'}):
            self.domain.memoryStats.return_value = stats
            seen = guest_view.memory_stats(self.domain)
            self.assertEqual((None, None, None, None), seen[:4], stats)
            self.assertIn('no usable memory', seen.reason)

    def test_memory_stats_libvirt_error(self):
        self.domain.memoryStats.side_effect = _error('domain is not running')
        seen = guest_view.memory_stats(self.domain)
        self.assertIsNone(seen.actual_mb)
        self.assertEqual('libvirt could not read the balloon statistics: '
                         'domain is not running', seen.reason)

    def test_memory_stats_without_balloon(self):
        self.flags(mem_stats_period_seconds=0, group='libvirt')
        seen = guest_view.memory_stats(self.domain)
        self.assertEqual('this host gives guests no memory balloon',
                         seen.reason)
        self.domain.memoryStats.assert_not_called()

    def test_observe_memory_never_raises(self):
        self.domain.memoryStats.return_value = {
            'actual': 1048576, 'available': 1015808, 'usable': 900000}
        self.assertEqual(1024, guest_view.observe_memory(
            self.driver, self.instance).actual_mb)
        self.driver._host.get_guest.side_effect = (
            libvirt_adjust.AdjustFailed(reason='no such guest'))
        seen = guest_view.observe_memory(self.driver, self.instance)
        self.assertEqual((None, 'no such guest'),
                         (seen.actual_mb, seen.reason))

    # wait_balloon

    def _balloon(self, *actual_mib):
        self.domain.memoryStats.side_effect = [
            {'actual': mib * 1024, 'usable': 0} for mib in actual_mib]

    def test_wait_balloon_until_reached(self):
        self._balloon(4096, 3000, 2048, 2048)
        self.assertEqual(2048, guest_view.wait_balloon(
            self.driver, self.instance, 2048))
        self.assertEqual([guest_view.POLL_INTERVAL] * 2, self.clock.slept)

    def test_wait_balloon_below_target_is_reached(self):
        self._balloon(1000, 1000)
        self.assertEqual(1000, guest_view.wait_balloon(
            self.driver, self.instance, 1024))
        self.assertEqual([], self.clock.slept)

    def test_wait_balloon_is_bounded(self):
        self.domain.memoryStats.return_value = {'actual': 3072 * 1024}
        self.assertEqual(3072, guest_view.wait_balloon(
            self.driver, self.instance, 1024))
        # balloon_timeout seconds of polling, not more.
        self.assertAlmostEqual(3, sum(self.clock.slept), delta=0.001)
        self.assertEqual(1003.0, round(self.clock.now, 3))

    def test_wait_balloon_unreadable(self):
        self.domain.memoryStats.side_effect = _error('gone')
        self.assertIsNone(guest_view.wait_balloon(
            self.driver, self.instance, 1024))
        self.assertLessEqual(sum(self.clock.slept), 3.001)
