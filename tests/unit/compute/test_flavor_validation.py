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

from nova.api.openstack.compute import servers
from nova.compute import api as compute_api
from nova import test

from nova_xloud.compute import flavor_validation
from nova_xloud.virt import resources
from tests.unit.virt import test_resources


class FlavorValidationTestCase(test.NoDBTestCase):

    def _validate_in_nova(self, flavor, image=None):
        # The method Nova runs for create, rebuild and resize.
        compute_api.API._validate_flavor_image_numa_pci(
            image or {'properties': {}}, flavor, validate_pci=True)

    def test_is_registered_with_nova(self):
        validators = [v.plugin for v in compute_api._flavor_validators()]
        self.assertIn(flavor_validation.validate_minimum_resources,
                      validators)

    def test_refusal_maps_to_http_400(self):
        self.assertTrue(issubclass(resources.InvalidMinimumResources,
                                   servers.INVALID_FLAVOR_IMAGE_EXCEPTIONS))

    def test_valid_flavors_pass(self):
        for specs in ({}, {'minimum_cpu': '1'}, {'minimum_memory': '512'},
                      {'minimum_cpu': '4', 'minimum_memory': '4096'}):
            self._validate_in_nova(test_resources.make_flavor(**specs))

    def test_minimum_above_maximum_refused(self):
        flavor = test_resources.make_flavor(vcpus=2, minimum_cpu='4')
        e = self.assertRaises(resources.InvalidMinimumResources,
                              self._validate_in_nova, flavor)
        self.assertIn("minimum_cpu=4 exceeds the flavor's vcpus=2",
                      e.format_message())

    def test_invalid_value_refused(self):
        # Old microversions skip extra spec validation; this still runs.
        for value in ('abc', '0', '-1', '1.5'):
            flavor = test_resources.make_flavor(minimum_memory=value)
            e = self.assertRaises(resources.InvalidMinimumResources,
                                  self._validate_in_nova, flavor)
            self.assertIn("'minimum_memory'", e.format_message())

    def test_image_property_conflict_refused(self):
        # Nova lets an image ask for pinned vCPUs when the flavor does not
        # forbid it; with a minimum_cpu flavor that must be refused too.
        flavor = test_resources.make_flavor(minimum_cpu='2')
        image = {'properties': {'hw_cpu_policy': 'dedicated'}}
        e = self.assertRaises(resources.InvalidMinimumResources,
                              self._validate_in_nova, flavor, image)
        self.assertIn('minimum_cpu=2 cannot be combined with image '
                      'property hw_cpu_policy=dedicated', e.format_message())
