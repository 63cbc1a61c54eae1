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

import fixtures
from nova import objects
from nova.scheduler import utils as scheduler_utils
from nova import test

from nova_xloud.scheduler import overrides
from tests.unit.virt import test_resources


class MinimumResourceAmountsTestCase(test.NoDBTestCase):

    def _merged(self, flavor):
        spec = objects.RequestSpec(flavor=flavor, is_bfv=False)
        return scheduler_utils.ResourceRequest.from_request_spec(
            spec).merged_resources()

    def test_is_registered_with_nova(self):
        hooks = [h.plugin for h in scheduler_utils._resource_override_hooks()]
        self.assertIn(overrides.minimum_resource_amounts, hooks)

    def test_amounts(self):
        self.assertEqual({}, overrides.minimum_resource_amounts(
            test_resources.make_flavor()))
        self.assertEqual({'VCPU': 2}, overrides.minimum_resource_amounts(
            test_resources.make_flavor(minimum_cpu='2')))
        self.assertEqual({'MEMORY_MB': 512},
                         overrides.minimum_resource_amounts(
                             test_resources.make_flavor(
                                 minimum_memory='512')))

    def test_request_claims_the_minimum(self):
        flavor = test_resources.make_flavor(minimum_cpu='2',
                                            minimum_memory='1024')
        self.assertEqual({'VCPU': 2, 'MEMORY_MB': 1024, 'DISK_GB': 1},
                         self._merged(flavor))

    def test_request_without_specs_is_upstream(self):
        self.assertEqual({'VCPU': 4, 'MEMORY_MB': 4096, 'DISK_GB': 1},
                         self._merged(test_resources.make_flavor()))

    def test_resources_from_flavor_agrees(self):
        # heal allocations (nova-manage) and other callers use this path
        flavor = test_resources.make_flavor(minimum_memory='1024')
        self.useFixture(fixtures.MockPatch(
            'nova.compute.utils.is_volume_backed_instance',
            return_value=False))
        self.assertEqual(
            {'VCPU': 4, 'MEMORY_MB': 1024, 'DISK_GB': 1},
            scheduler_utils.resources_from_flavor(mock.Mock(), flavor))

    def test_unusable_minimum_claims_the_flavor(self):
        flavor = test_resources.make_flavor(
            minimum_cpu='9', minimum_memory='1024')
        self.assertEqual({'VCPU': 4, 'MEMORY_MB': 4096, 'DISK_GB': 1},
                         self._merged(flavor))

    def test_claim_flavor_when_disabled(self):
        self.flags(claim_minimum_in_placement=False, group='xloud')
        flavor = test_resources.make_flavor(minimum_cpu='2',
                                            minimum_memory='1024')
        self.assertEqual({}, overrides.minimum_resource_amounts(flavor))
        self.assertEqual({'VCPU': 4, 'MEMORY_MB': 4096, 'DISK_GB': 1},
                         self._merged(flavor))
