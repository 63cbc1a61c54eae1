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

import fixtures
from nova.compute import task_states
from nova import objects
from nova.scheduler import utils as scheduler_utils
from nova import test
from oslo_utils.fixture import uuidsentinel as uuids

from nova_xloud import records
from nova_xloud.scheduler import overrides
from tests.unit.virt import test_resources


class MinimumResourceAmountsTestCase(test.NoDBTestCase):

    def _merged(self, flavor):
        spec = objects.RequestSpec(flavor=flavor, is_bfv=False)
        return scheduler_utils.ResourceRequest.from_request_spec(
            spec).merged_resources()

    def test_is_registered_with_nova(self):
        hooks = [h.plugin for h in scheduler_utils._resource_override_hooks()]
        self.assertIn(overrides.resource_amounts, hooks)

    def test_amounts(self):
        self.assertEqual({}, overrides.resource_amounts(
            test_resources.make_flavor()))
        self.assertEqual({'VCPU': 2}, overrides.resource_amounts(
            test_resources.make_flavor(minimum_cpu='2')))
        self.assertEqual({'MEMORY_MB': 512},
                         overrides.resource_amounts(
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
            scheduler_utils.resources_from_flavor(objects.Instance(), flavor))

    def test_resources_from_flavor_names_the_server(self):
        self.useFixture(fixtures.MockPatch(
            'nova.compute.utils.is_volume_backed_instance',
            return_value=False))
        plugin = self.useFixture(fixtures.MockPatch(
            'nova_xloud.scheduler.overrides._load_from_cell',
            return_value=None)).mock
        scheduler_utils.resources_from_flavor(
            objects.Instance(uuid=uuids.server),
            test_resources.make_flavor())
        plugin.assert_called_once_with(uuids.server)

    def test_unusable_minimum_claims_the_flavor(self):
        flavor = test_resources.make_flavor(
            minimum_cpu='9', minimum_memory='1024')
        self.assertEqual({'VCPU': 4, 'MEMORY_MB': 4096, 'DISK_GB': 1},
                         self._merged(flavor))

    def test_claim_flavor_when_disabled(self):
        self.flags(claim_minimum_in_placement=False, group='xloud')
        flavor = test_resources.make_flavor(minimum_cpu='2',
                                            minimum_memory='1024')
        self.assertEqual({}, overrides.resource_amounts(flavor))
        self.assertEqual({'VCPU': 4, 'MEMORY_MB': 4096, 'DISK_GB': 1},
                         self._merged(flavor))


class ServerResourceAmountsTestCase(test.NoDBTestCase):
    """A server that exists claims its own values where it goes."""

    def setUp(self):
        super().setUp()
        self.flavor = test_resources.make_flavor(minimum_cpu='1',
                                                 minimum_memory='1024')
        self.instance = objects.Instance(
            uuid=uuids.server, flavor=self.flavor, system_metadata={},
            task_state=None, old_flavor=None)
        self.load = self.useFixture(fixtures.MockPatch(
            'nova_xloud.scheduler.overrides._load_from_cell',
            return_value=self.instance)).mock

    def _amounts(self, flavor=None, task_state=None):
        self.instance.task_state = task_state
        spec = objects.RequestSpec(flavor=flavor or self.flavor,
                                   instance_uuid=uuids.server)
        return overrides.resource_amounts(flavor or self.flavor, spec)

    def _adjust(self, persist):
        records.set_live(self.instance, self.flavor, 3, 3072)
        if persist:
            records.set_persisted(self.instance, self.flavor, 3, 3072)

    def test_never_adjusted_claims_the_minimum(self):
        self.assertEqual({'VCPU': 1, 'MEMORY_MB': 1024}, self._amounts())
        self.load.assert_called_once_with(uuids.server)

    def test_persisted_values_go_everywhere(self):
        self._adjust(persist=True)
        for state in (None, task_states.MIGRATING, task_states.RESIZE_PREP,
                      task_states.REBUILDING, task_states.UNSHELVING):
            self.assertEqual({'VCPU': 3, 'MEMORY_MB': 3072},
                             self._amounts(task_state=state), state)

    def test_live_values_only_survive_a_live_migration(self):
        self._adjust(persist=False)
        self.assertEqual({'VCPU': 3, 'MEMORY_MB': 3072},
                         self._amounts(task_state=task_states.MIGRATING))
        self.assertEqual({'VCPU': 3, 'MEMORY_MB': 3072}, self._amounts())
        for state in (task_states.RESIZE_PREP, task_states.REBUILDING,
                      task_states.UNSHELVING):
            self.assertEqual({'VCPU': 1, 'MEMORY_MB': 1024},
                             self._amounts(task_state=state), state)

    def test_resize_claims_the_new_flavor_minimum(self):
        self._adjust(persist=True)
        new = test_resources.make_flavor(vcpus=8, memory_mb=8192,
                                         minimum_cpu='2')
        new.flavorid = 'big'
        self.assertEqual({'VCPU': 2}, self._amounts(
            flavor=new, task_state=task_states.RESIZE_PREP))

    def test_adjusted_server_without_specs(self):
        flavor = test_resources.make_flavor()
        self.instance.flavor = flavor
        records.set_live(self.instance, flavor, 2, 2048)
        records.set_persisted(self.instance, flavor, 2, 2048)
        self.assertEqual({'VCPU': 2, 'MEMORY_MB': 2048}, self._amounts(
            flavor=flavor, task_state=task_states.REBUILDING))

    def test_adjusted_server_keeps_its_values_when_minimum_not_claimed(self):
        self.flags(claim_minimum_in_placement=False, group='xloud')
        self.assertEqual({}, self._amounts())
        self._adjust(persist=True)
        self.assertEqual({'VCPU': 3, 'MEMORY_MB': 3072}, self._amounts())

    def test_unreadable_server_claims_the_flavor_minimum(self):
        self.load.side_effect = Exception('no API database here')
        self._adjust(persist=True)
        self.assertEqual({'VCPU': 1, 'MEMORY_MB': 1024}, self._amounts())

    def test_server_not_in_a_cell_yet(self):
        self.load.return_value = None
        self.assertEqual({'VCPU': 1, 'MEMORY_MB': 1024}, self._amounts())
