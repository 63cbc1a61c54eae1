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
import json
from unittest import mock

from nova import context
from nova import objects
from nova import test
from nova.tests.unit import fake_instance
from oslo_utils import timeutils

from nova_xloud import records
from nova_xloud.virt import resources


def make_flavor(vcpus=4, memory_mb=4096, flavorid='xl-id', **extra_specs):
    return objects.Flavor(name='xl', flavorid=flavorid, vcpus=vcpus,
                          memory_mb=memory_mb, root_gb=1, ephemeral_gb=0,
                          swap=0, extra_specs=extra_specs)


class RecordsTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.ctxt = context.get_admin_context()
        self.flavor = make_flavor(minimum_cpu='2', minimum_memory='1024')

    def _instance(self, flavor=None, **sysmeta):
        instance = fake_instance.fake_instance_obj(
            self.ctxt, flavor=flavor or self.flavor)
        instance.system_metadata = dict(sysmeta)
        return instance

    def test_limits(self):
        self.assertEqual(((2, 4), (1024, 4096)), records.limits(self.flavor))
        self.assertEqual(((1, 4), (256, 4096)), records.limits(make_flavor()))
        self.flags(min_memory_mb=512, group='xloud')
        self.assertEqual(((1, 2), (512, 2048)),
                         records.limits(make_flavor(2, 2048)))
        # The default minimum never exceeds a small flavor's ram.
        self.assertEqual(((1, 1), (128, 128)),
                         records.limits(make_flavor(1, 128)))

    def test_current_defaults(self):
        instance = self._instance()
        self.assertEqual((2, 1024), records.current(instance))
        self.assertTrue(records.is_persisted(instance))
        self.assertEqual((4, 4096),
                         records.current(self._instance(make_flavor())))

    def test_persisted_and_live(self):
        instance = self._instance()
        records.set_persisted(instance, self.flavor, vcpus=3)
        self.assertEqual({'xloud_current_vcpus': '3',
                          'xloud_current_memory_mb': '1024',
                          'xloud_current_flavorid': 'xl-id'},
                         instance.system_metadata)
        self.assertEqual((3, 1024), records.boot_resources(instance,
                                                           self.flavor))
        self.assertEqual((3, 1024), resources.current_resources(
            instance, self.flavor))
        records.set_live(instance, self.flavor, memory_mb=4096)
        self.assertEqual((3, 4096), records.current(instance))
        self.assertFalse(records.is_persisted(instance))
        self.assertTrue(records.forget_live(instance))
        self.assertEqual((3, 1024), records.current(instance))
        self.assertFalse(records.forget_live(instance))

    def test_persisted_of_another_flavor_is_ignored_and_dropped(self):
        instance = self._instance(**{
            'xloud_current_vcpus': '3', 'xloud_current_memory_mb': '2048',
            'xloud_current_flavorid': 'old'})
        self.assertIsNone(records.persisted(instance, self.flavor))
        self.assertEqual((2, 1024), records.boot_resources(instance,
                                                           self.flavor))
        self.assertTrue(records.forget_stale_persisted(instance,
                                                       self.flavor))
        self.assertEqual({}, instance.system_metadata)

    def test_resize_in_progress(self):
        values = {'xloud_current_vcpus': '3',
                  'xloud_current_memory_mb': '2048',
                  'xloud_current_flavorid': 'xl-id'}
        other = make_flavor(6, 6144, flavorid='xxl-id', minimum_cpu='3')
        # Resized from the stored flavor: kept (unused) for a revert.
        instance = self._instance(other, **values)
        instance.old_flavor = self.flavor
        self.assertIsNone(records.persisted(instance, other))
        self.assertFalse(records.forget_stale_persisted(instance, other))
        # Reverted: used again.
        instance.flavor = self.flavor
        self.assertEqual((3, 2048), records.persisted(instance, self.flavor))
        instance.old_flavor = None
        self.assertEqual((3, 2048), records.persisted(instance, self.flavor))
        # Resized into the stored flavor from another: stale.
        instance.old_flavor = other
        self.assertIsNone(records.persisted(instance, self.flavor))
        self.assertTrue(records.forget_stale_persisted(instance,
                                                       self.flavor))

    def test_invalid_persisted_values_are_ignored(self):
        for vcpus, memory in (('9', '1024'), ('1', '1024'), ('3', 'x'),
                              ('3', '99999'), (None, '1024')):
            sysmeta = {'xloud_current_flavorid': 'xl-id',
                       'xloud_current_memory_mb': memory}
            if vcpus is not None:
                sysmeta['xloud_current_vcpus'] = vcpus
            instance = self._instance(**sysmeta)
            self.assertEqual((2, 1024), records.boot_resources(
                instance, self.flavor), sysmeta)

    def test_server_metadata_is_ignored(self):
        instance = self._instance()
        instance.metadata = {'xloud_current_vcpus': '3',
                             'xloud_current_memory_mb': '2048',
                             'xloud_current_flavorid': 'xl-id'}
        self.assertEqual((2, 1024), records.current(instance))

    def test_sequence_and_results(self):
        instance = self._instance()
        self.assertEqual(0, records.sequence(instance))
        self.assertEqual(1, records.start_adjustment(instance, 'req-1'))
        self.assertEqual(('req-1', 'pending', None), records.last(instance))
        records.set_result(instance, 'req-1', records.STATUS_ERROR,
                           'x' * 300)
        self.assertEqual(255, len(records.last(instance).message))
        self.assertEqual(2, records.start_adjustment(instance, 'req-2'))
        self.assertEqual(('req-2', 'pending', None), records.last(instance))
        # A result of an older request does not hide the newer one.
        records.set_result(instance, 'req-1', records.STATUS_SUCCESS)
        self.assertEqual(('req-2', 'pending', None), records.last(instance))
        records.set_result(instance, 'req-2', records.STATUS_SUCCESS)
        self.assertEqual(('req-2', 'success', None), records.last(instance))

    def test_all_keys_prefixed(self):
        for key in (records.PERSISTED_KEYS + records.LIVE_KEYS + (
                records.LAST_REQUEST_ID, records.LAST_STATUS,
                records.LAST_MESSAGE, records.SEQUENCE)):
            self.assertTrue(key.startswith(records.PREFIX), key)


class ObservedRecordsTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.ctxt = context.get_admin_context()
        self.flavor = make_flavor(minimum_cpu='2', minimum_memory='1024')

    def _instance(self, **sysmeta):
        instance = fake_instance.fake_instance_obj(self.ctxt,
                                                   flavor=self.flavor)
        instance.system_metadata = dict(sysmeta)
        return instance

    def test_requested_keeps_the_last_asked_per_field(self):
        instance = self._instance()
        self.assertEqual((None, None), records.requested(instance))
        records.start_adjustment(instance, 'req-1', vcpus=3)
        self.assertEqual((3, None), records.requested(instance))
        records.start_adjustment(instance, 'req-2', memory_mb=2048)
        self.assertEqual((3, 2048), records.requested(instance))
        records.start_adjustment(instance, 'req-3', vcpus=4,
                                 memory_mb=1536)
        self.assertEqual((4, 1536), records.requested(instance))
        # Without values (as before) only the sequence moves.
        self.assertEqual(4, records.start_adjustment(instance, 'req-4'))
        self.assertEqual((4, 1536), records.requested(instance))
        self.assertEqual('4', instance.system_metadata[
            'xloud_requested_vcpus'])

    def test_not_observed(self):
        instance = self._instance()
        self.assertEqual(
            records.ObservedVcpus(None, None, None, records.NOT_OBSERVED),
            records.observed_vcpus(instance))
        self.assertEqual(
            records.ObservedMemory(None, None, None, None, None,
                                   records.NOT_OBSERVED),
            records.observed_memory(instance))
        # Unreadable records are as none.
        instance.system_metadata.update(xloud_observed_vcpus='{oops',
                                        xloud_observed_memory='[1, 2]')
        self.assertEqual(records.NOT_OBSERVED,
                         records.observed_vcpus(instance).reason)
        self.assertEqual(records.NOT_OBSERVED,
                         records.observed_memory(instance).reason)

    def test_observe_constructors(self):
        seen = records.observe_vcpus(online=3, observed_at='T')
        self.assertEqual((3, records.SOURCE_GUEST_AGENT, 'T', None), seen)
        self.assertEqual((None, None, 'T', 'no agent'), records.observe_vcpus(
            reason='no agent', observed_at='T'))
        self.assertEqual('unknown', records.observe_vcpus().reason)
        memory = records.observe_memory(actual_mb=2048, observed_at='T')
        self.assertEqual((2048, None, None, records.SOURCE_BALLOON, 'T',
                          None), memory)
        self.assertEqual((None, None, None, None, 'T', 'unknown'),
                         records.observe_memory(observed_at='T'))
        # The time is UTC, to the second.
        with mock.patch.object(timeutils, 'utcnow', return_value=(
                datetime.datetime(2026, 3, 4, 5, 6, 7, 890))):
            self.assertEqual('2026-03-04T05:06:07Z',
                             records.observe_vcpus(online=1).observed_at)

    def test_observed_round_trip(self):
        instance = self._instance()
        vcpus = records.observe_vcpus(online=3,
                                      observed_at='2026-01-02T03:04:05Z')
        memory = records.observe_memory(
            actual_mb=2048, available_mb=2016, usable_mb=1800,
            observed_at='2026-01-02T03:04:05Z')
        records.set_observed(instance, vcpus=vcpus, memory=memory)
        self.assertEqual(vcpus, records.observed_vcpus(instance))
        self.assertEqual(memory, records.observed_memory(instance))
        # None values are not stored, and come back as None.
        self.assertEqual({'online': 3, 'observed_at': '2026-01-02T03:04:05Z',
                          'source': 'guest-agent'}, json.loads(
            instance.system_metadata['xloud_observed_vcpus']))
        # One of them alone leaves the other as it was.
        other = records.observe_vcpus(reason='no agent', observed_at='T2')
        records.set_observed(instance, vcpus=other)
        self.assertEqual(other, records.observed_vcpus(instance))
        self.assertEqual(memory, records.observed_memory(instance))

    def _stored_length(self, reason):
        instance = self._instance()
        records.set_observed(instance, memory=records.observe_memory(
            actual_mb=2048, reason=reason,
            observed_at='2026-01-02T03:04:05Z'))
        return instance, instance.system_metadata['xloud_observed_memory']

    def test_long_reason_is_cut_to_fit(self):
        instance, stored = self._stored_length('x' * 1000)
        self.assertEqual(records.MAX_VALUE_LENGTH, len(stored))
        reason = records.observed_memory(instance).reason
        self.assertTrue(reason.startswith('xxx'))
        self.assertTrue(reason.endswith('...'))
        self.assertEqual(2048, records.observed_memory(instance).actual_mb)
        # A short one is kept whole.
        instance, stored = self._stored_length('short')
        self.assertEqual('short', records.observed_memory(instance).reason)

    def test_long_reason_that_json_escapes_still_fits(self):
        # libvirt's messages can be localised or quote names: JSON makes
        # such characters longer than one.
        for char in ('\u00e9', '"', '\\'):
            instance, stored = self._stored_length(char * 300)
            self.assertLessEqual(len(stored), records.MAX_VALUE_LENGTH,
                                 repr(char))
            self.assertEqual(2048,
                             records.observed_memory(instance).actual_mb)

    def test_forget_live_drops_observed(self):
        instance = self._instance(xloud_live_vcpus='3',
                                  xloud_live_memory_mb='2048',
                                  xloud_live_flavorid='xl-id',
                                  xloud_requested_vcpus='3')
        records.set_observed(instance, vcpus=records.observe_vcpus(online=3),
                             memory=records.observe_memory(actual_mb=2048))
        self.assertTrue(records.forget_live(instance))
        self.assertEqual({'xloud_requested_vcpus': '3'},
                         instance.system_metadata)
        self.assertEqual(records.NOT_OBSERVED,
                         records.observed_vcpus(instance).reason)
        # The observed values alone are something to drop too.
        records.set_observed(instance, vcpus=records.observe_vcpus(online=3))
        self.assertTrue(records.forget_live(instance))
        self.assertFalse(records.forget_live(instance))

    def test_all_new_keys_prefixed(self):
        for key in (records.REQUESTED_VCPUS, records.REQUESTED_MEMORY_MB) + (
                records.OBSERVED_KEYS):
            self.assertTrue(key.startswith(records.PREFIX), key)

    def _memory(self, actual_mb, usable_mb, reason=None):
        return records.observe_memory(actual_mb=actual_mb,
                                      available_mb=actual_mb - 32,
                                      usable_mb=usable_mb, reason=reason)

    def test_shrink_refusal_numbers(self):
        # The guest uses 4096 - 2596 = 1500 MiB.
        memory = self._memory(4096, 2596)
        self.assertIsNone(records.shrink_refusal(memory, 1628, 128))
        self.assertIsNone(records.shrink_refusal(memory, 1500, 0))
        self.assertEqual(
            'the guest uses 1500 MiB of its 4096 MiB (2596 MiB usable); '
            '1627 MiB leaves less than the 128 MiB margin: the smallest '
            'safe target is 1628 MiB',
            records.shrink_refusal(memory, 1627, 128))
        self.assertIn('smallest safe target is 1500 MiB',
                      records.shrink_refusal(memory, 1499, 0))

    def test_shrink_refusal_guest_using_nothing_usable(self):
        # More usable than actual (stale statistics): uses nothing.
        self.assertIsNone(records.shrink_refusal(
            self._memory(1024, 2048), 128, 128))
        self.assertIn('the guest uses 1024 MiB of its 1024 MiB (0 MiB '
                      'usable)', records.shrink_refusal(
                          self._memory(1024, 0), 512, 128))

    def test_shrink_refusal_with_a_report_older_than_the_balloon(self):
        # actual is read live, usable and available come from the guest's
        # last report, here from before a shrink 703 -> 512 MiB: what it
        # counted then less usable is what it uses.
        memory = records.observe_memory(actual_mb=512, available_mb=703,
                                        usable_mb=650)
        self.assertIsNone(records.shrink_refusal(memory, 181, 128))
        self.assertIn('the guest uses 53 MiB of its 512 MiB',
                      records.shrink_refusal(memory, 180, 128))

    def test_shrink_refusal_without_statistics(self):
        for memory, why in (
                (records.observe_memory(actual_mb=2048, reason='no stats'),
                 'no stats'),
                (records.observe_memory(actual_mb=2048),
                 'no usable memory reported'),
                (records.observe_memory(reason='no balloon'), 'no balloon'),
                (records.observe_memory(usable_mb=100), 'unknown')):
            refusal = records.shrink_refusal(memory, 1024, 128)
            self.assertIn('the guest reports no memory use (balloon '
                          'statistics): %s' % why, refusal)

    def test_has_guest_agent(self):
        for value, expected in (('yes', True), ('true', True),
                                ('True', True), ('no', False),
                                ('false', False), (None, False)):
            sysmeta = ({} if value is None else
                       {'image_hw_qemu_guest_agent': value})
            self.assertIs(expected, records.has_guest_agent(
                self._instance(**sysmeta)), value)

    def test_has_guest_agent_unreadable_image_is_no_agent(self):
        with mock.patch.object(objects.ImageMeta, 'from_instance',
                               side_effect=ValueError('broken')):
            self.assertFalse(records.has_guest_agent(self._instance(
                image_hw_qemu_guest_agent='yes')))
