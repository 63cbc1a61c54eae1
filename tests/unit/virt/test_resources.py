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

from unittest import mock

import ddt
from nova.compute import task_states
from nova import context
from nova import objects
from nova import test
from nova.tests.unit import fake_instance

from nova_xloud.virt import resources


def make_flavor(vcpus=4, memory_mb=4096, **extra_specs):
    return objects.Flavor(name='xl', flavorid='xl-id', vcpus=vcpus,
                          memory_mb=memory_mb, root_gb=1, ephemeral_gb=0,
                          swap=0, extra_specs=extra_specs)


def make_image_meta(**properties):
    return objects.ImageMeta.from_dict({'properties': properties})


@ddt.ddt
class ParseAmountTestCase(test.NoDBTestCase):

    @ddt.data('1', '2', '2048', str(resources.MAX_AMOUNT), 7)
    def test_accepted(self, value):
        self.assertEqual(int(value), resources.parse_amount('minimum_cpu',
                                                            value))

    @ddt.data('abc', '0', '-1', '1.5', '', ' 2', '2 ', '+2', '2_0', '0x10',
              '02', '\u0662', str(resources.MAX_AMOUNT + 1),
              '9' * 40, 1.5, None, True)
    def test_refused(self, value):
        e = self.assertRaises(ValueError, resources.parse_amount,
                              'minimum_memory', value)
        self.assertIn("'minimum_memory'", str(e))
        self.assertIn("from 1 to the flavor's ram", str(e))


@ddt.ddt
class ValidateMinimumTestCase(test.NoDBTestCase):

    def test_no_specs(self):
        self.assertEqual(resources.NO_RESOURCES,
                         resources.validate_minimum(make_flavor()))

    def test_both_specs(self):
        flavor = make_flavor(minimum_cpu='2', minimum_memory='1024')
        self.assertEqual((2, 1024), resources.validate_minimum(flavor))

    def test_minimum_equal_to_maximum(self):
        flavor = make_flavor(minimum_cpu='4', minimum_memory='4096')
        self.assertEqual((4, 4096), resources.validate_minimum(flavor))

    def test_cpu_exceeds_vcpus(self):
        flavor = make_flavor(vcpus=2, minimum_cpu='3')
        e = self.assertRaises(resources.InvalidMinimumResources,
                              resources.validate_minimum, flavor)
        self.assertIn("minimum_cpu=3 exceeds the flavor's vcpus=2",
                      e.format_message())

    def test_memory_exceeds_ram(self):
        flavor = make_flavor(memory_mb=512, minimum_memory='1024')
        e = self.assertRaises(resources.InvalidMinimumResources,
                              resources.validate_minimum, flavor)
        self.assertIn("minimum_memory=1024 exceeds the flavor's ram=512",
                      e.format_message())

    @ddt.data('abc', '0', '-1', '1.5', '')
    def test_invalid_value(self, value):
        flavor = make_flavor(minimum_cpu=value)
        e = self.assertRaises(resources.InvalidMinimumResources,
                              resources.validate_minimum, flavor)
        self.assertIn("extra spec 'minimum_cpu' must be a whole number",
                      e.format_message())
        self.assertIn("'xl'", e.format_message())

    @ddt.data(
        ('minimum_cpu', {'hw:cpu_policy': 'dedicated'},
         'hw:cpu_policy=dedicated'),
        ('minimum_cpu', {'hw:cpu_policy': 'mixed',
                         'hw:cpu_dedicated_mask': '^0'},
         'hw:cpu_policy=mixed'),
        ('minimum_cpu', {'hw:cpu_realtime': 'yes'}, 'hw:cpu_realtime=yes'),
        ('minimum_cpu', {'hw:numa_nodes': '2'}, 'hw:numa_nodes=2'),
        ('minimum_cpu', {'resources:VCPU': '4'}, 'resources:VCPU=4'),
        ('minimum_cpu', {'resources1:PCPU': '4'}, 'resources1:PCPU=4'),
        ('minimum_memory', {'hw:mem_page_size': 'large'},
         'hw:mem_page_size=large'),
        ('minimum_memory', {'hw:mem_page_size': '2MB'},
         'hw:mem_page_size=2MB'),
        ('minimum_memory', {'hw:mem_encryption': 'true'},
         'hw:mem_encryption=true'),
        ('minimum_memory', {'hw:locked_memory': 'True',
                            'hw:mem_page_size': 'small'},
         'hw:locked_memory=True'),
        ('minimum_memory', {'resources:MEMORY_MB': '100'},
         'resources:MEMORY_MB=100'),
    )
    @ddt.unpack
    def test_conflicting_flavor_spec(self, name, specs, setting):
        value = '1' if name == 'minimum_cpu' else '512'
        flavor = make_flavor(**{name: value}, **specs)
        e = self.assertRaises(resources.InvalidMinimumResources,
                              resources.validate_minimum, flavor)
        self.assertIn(f'{name}={value} cannot be combined with {setting}',
                      e.format_message())

    @ddt.data(
        ('minimum_cpu', {'hw_cpu_policy': 'dedicated'}),
        ('minimum_cpu', {'hw_numa_nodes': 2}),
        ('minimum_memory', {'hw_mem_page_size': 'large'}),
        ('minimum_memory', {'hw_mem_encryption': True}),
        ('minimum_memory', {'hw_locked_memory': True}),
    )
    @ddt.unpack
    def test_conflicting_image_property(self, name, properties):
        flavor = make_flavor(**{name: '1'})
        key = next(iter(properties))
        e = self.assertRaises(resources.InvalidMinimumResources,
                              resources.validate_minimum, flavor,
                              make_image_meta(**properties))
        self.assertIn(f'{name}=1 cannot be combined with image property '
                      f'{key}=', e.format_message())

    @ddt.data(
        ('minimum_cpu', {'hw:cpu_policy': 'shared', 'hw:numa_nodes': '1',
                         'hw:mem_page_size': 'large',
                         'resources:MEMORY_MB': '100'}),
        ('minimum_memory', {'hw:cpu_policy': 'dedicated',
                            'hw:numa_nodes': '2', 'hw:mem_encryption': 'no',
                            'resources:VCPU': '2'}),
    )
    @ddt.unpack
    def test_settings_of_the_other_resource_are_fine(self, name, specs):
        flavor = make_flavor(**{name: '1'}, **specs)
        self.assertIsNotNone(
            getattr(resources.validate_minimum(flavor),
                    'vcpus' if name == 'minimum_cpu' else 'memory_mb'))

    def test_all_conflicts_are_named(self):
        flavor = make_flavor(minimum_cpu='1', minimum_memory='1',
                             **{'hw:cpu_policy': 'dedicated',
                                'hw:mem_page_size': 'large'})
        e = self.assertRaises(resources.InvalidMinimumResources,
                              resources.validate_minimum, flavor)
        self.assertIn('minimum_cpu=1 cannot be combined with '
                      'hw:cpu_policy=dedicated; minimum_memory=1 cannot be '
                      'combined with hw:mem_page_size=large',
                      e.format_message())


class CurrentResourcesTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.ctxt = context.get_admin_context()

    def _instance(self, flavor, **kwargs):
        return fake_instance.fake_instance_obj(self.ctxt, flavor=flavor,
                                               **kwargs)

    def test_minimum_from_flavor(self):
        flavor = make_flavor(minimum_cpu='2', minimum_memory='1024')
        self.assertEqual(
            (2, 1024),
            resources.current_resources(self._instance(flavor), flavor))

    def test_no_specs_means_maximum(self):
        flavor = make_flavor()
        self.assertEqual(
            resources.NO_RESOURCES,
            resources.current_resources(self._instance(flavor), flavor))

    def test_server_metadata_is_ignored(self):
        # The tenant owns server metadata: it must never set what the guest
        # gets, whether or not the flavor has a minimum.
        tenant_metadata = {'minimum_cpu': '1', 'minimum_memory': '64',
                           resources.CURRENT_VCPUS_KEY: '1',
                           resources.CURRENT_MEMORY_MB_KEY: '64'}
        for flavor, expected in (
                (make_flavor(), resources.NO_RESOURCES),
                (make_flavor(minimum_cpu='3', minimum_memory='2048'),
                 (3, 2048))):
            instance = self._instance(flavor, metadata=tenant_metadata)
            self.assertEqual(
                expected, resources.current_resources(instance, flavor))

    @mock.patch.object(resources.LOG, 'warning')
    def test_unusable_minimum_is_ignored_with_warning(self, mock_warn):
        flavor = make_flavor(vcpus=2, minimum_cpu='8',
                             minimum_memory='1024')
        self.assertEqual(
            resources.NO_RESOURCES,
            resources.current_resources(self._instance(flavor), flavor))
        mock_warn.assert_called_once()
        self.assertIn('minimum_cpu=8', mock_warn.call_args[0][1])

    def test_a_rescue_domain_starts_with_the_live_values(self):
        flavor = make_flavor(minimum_cpu='2', minimum_memory='1024')
        flavorid = str(flavor.flavorid)
        live = {'xloud_live_vcpus': '4', 'xloud_live_memory_mb': '3072',
                'xloud_live_flavorid': flavorid}
        persisted = {'xloud_current_vcpus': '3',
                     'xloud_current_memory_mb': '2048',
                     'xloud_current_flavorid': flavorid}
        for task_state, sysmeta, expected in (
                (task_states.RESCUING, dict(live, **persisted), (4, 3072)),
                (task_states.RESCUING, persisted, (3, 2048)),
                (task_states.RESCUING, {}, (2, 1024)),
                (None, dict(live, **persisted), (3, 2048)),
                (task_states.REBOOTING_HARD, live, (2, 1024))):
            instance = self._instance(flavor, task_state=task_state)
            # Set after creation: the fake instance drops it.
            instance.system_metadata = dict(sysmeta)
            self.assertEqual(
                expected, resources.current_resources(instance, flavor),
                (task_state, sysmeta))

    def test_minimum_resources_tolerates_flavor_without_extra_specs(self):
        flavor = objects.Flavor(name='bare', vcpus=1, memory_mb=512)
        self.assertEqual(resources.NO_RESOURCES,
                         resources.minimum_resources(flavor))
