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

from nova import context
from nova import objects
from nova import test
from nova.tests.unit import fake_instance

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
