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

"""Minimum resources at boot, end to end with the libvirt driver.

The API, conductor, scheduler, placement and a libvirt compute on
fakelibvirt run in process; the domain XML checked here is the one the
driver hands to libvirt's defineXML.
"""

import io
import re
from unittest import mock

import fixtures
from lxml import etree
from nova.cmd import manage
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client

from nova_xloud.testing import base
from nova_xloud.virt import guest_config


class MinimumResourcesTestBase(base.ServersTestBase):

    microversion = '2.74'

    def setUp(self):
        super().setUp()
        self.defined = []
        orig_define = fakelibvirt.Connection.defineXML

        def record_define(conn, xml):
            self.defined.append(xml)
            return orig_define(conn, xml)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Connection.defineXML',
            record_define))
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.virt.guest_config._no_balloon_warned', False))
        self.flags(allow_resize_to_same_host=True)
        self.start_compute('compute1')
        self.rp_uuid = self.compute_rp_uuids['compute1']

    def _flavor(self, vcpu=4, memory_mb=4096, **extra_specs):
        return self._create_flavor(vcpu=vcpu, memory_mb=memory_mb, disk=1,
                                   ephemeral=0, extra_spec=extra_specs)

    def _boot(self, flavor_id):
        return self._create_server(flavor_id=flavor_id, networks='none')

    def _domain_xml(self, server):
        """The last domain XML the driver defined for this server."""
        for xml in reversed(self.defined):
            if etree.fromstring(xml).findtext('uuid') == server['id']:
                return xml
        self.fail('no domain defined for server %s' % server['id'])

    def _stable_xml(self, server):
        """The domain XML without the time it was generated at."""
        return re.sub(r'<nova:creationTime>[^<]*</nova:creationTime>', '',
                      self._domain_xml(server))

    def _vcpu_and_memory(self, server):
        root = etree.fromstring(self._domain_xml(server))
        vcpu = root.find('vcpu')
        return (vcpu.get('current'), vcpu.text, root.findtext('memory'),
                root.findtext('currentMemory'))

    def _allocation(self, server):
        allocations = self._get_allocations_by_server_uuid(server['id'])
        return allocations[self.rp_uuid]['resources']

    def _assert_refused(self, func, *args, expected=()):
        e = self.assertRaises(client.OpenStackApiException, func, *args)
        self.assertEqual(400, e.response.status_code)
        for text in expected:
            self.assertIn(text, e.response.text)
        return e


class MinimumResourcesBootTestCase(MinimumResourcesTestBase):

    def test_boot_with_both_minimums(self):
        server = self._boot(self._flavor(minimum_cpu='2',
                                         minimum_memory='1024'))
        self.assertEqual(('2', '4', '4194304', '1048576'),
                         self._vcpu_and_memory(server))
        self.assertIn('<vcpu current="2">4</vcpu>', self._domain_xml(server))
        self.assertEqual({'VCPU': 2, 'MEMORY_MB': 1024, 'DISK_GB': 1},
                         self._allocation(server))
        self.assertEqual({'VCPU': 2, 'MEMORY_MB': 1024, 'DISK_GB': 1},
                         self._get_provider_usages(self.rp_uuid))
        # The CPU topology is sized for the maximum so vCPUs can be added.
        topology = etree.fromstring(
            self._domain_xml(server)).find('cpu/topology')
        sizes = [int(topology.get(level))
                 for level in ('sockets', 'cores', 'threads')]
        self.assertEqual(4, sizes[0] * sizes[1] * sizes[2])

    def test_boot_with_minimum_cpu(self):
        server = self._boot(self._flavor(minimum_cpu='1'))
        self.assertEqual(('1', '4', '4194304', None),
                         self._vcpu_and_memory(server))
        self.assertEqual({'VCPU': 1, 'MEMORY_MB': 4096, 'DISK_GB': 1},
                         self._allocation(server))

    def test_boot_with_minimum_memory(self):
        server = self._boot(self._flavor(minimum_memory='512'))
        self.assertEqual((None, '4', '4194304', '524288'),
                         self._vcpu_and_memory(server))
        self.assertEqual({'VCPU': 4, 'MEMORY_MB': 512, 'DISK_GB': 1},
                         self._allocation(server))

    def test_server_views_keep_the_flavor_maximum(self):
        server = self._boot(self._flavor(minimum_cpu='2',
                                         minimum_memory='1024'))
        self.api.microversion = '2.47'
        flavor = self.api.get_server(server['id'])['flavor']
        self.assertEqual((4, 4096), (flavor['vcpus'], flavor['ram']))
        self.assertEqual({'minimum_cpu': '2', 'minimum_memory': '1024'},
                         flavor['extra_specs'])
        # The default quota driver counts the flavor, not the allocation.
        limits = self.api.get_limits()['absolute']
        self.assertEqual((4, 4096),
                         (limits['totalCoresUsed'], limits['totalRAMUsed']))

    def test_minimum_equal_to_maximum(self):
        server = self._boot(self._flavor(vcpu=2, memory_mb=2048,
                                         minimum_cpu='2',
                                         minimum_memory='2048'))
        self.assertEqual(('2', '2', '2097152', '2097152'),
                         self._vcpu_and_memory(server))

    def test_flavor_without_specs_is_byte_identical_to_upstream(self):
        server = self._boot(self._flavor())
        booted_xml = self._domain_xml(server)
        self.assertNotIn('current', booted_xml)
        self.assertEqual({'VCPU': 4, 'MEMORY_MB': 4096, 'DISK_GB': 1},
                         self._allocation(server))

        # Regenerate the XML with our hook, then with no hook installed at
        # all (upstream behaviour): both must be the same bytes.
        self._reboot_server(server, hard=True)
        with_hook = self._stable_xml(server)
        with mock.patch('nova.virt.libvirt.driver._guest_config_hooks',
                        return_value=[]):
            self._reboot_server(server, hard=True)
        without_hook = self._stable_xml(server)
        self.assertEqual(without_hook, with_hook)

    def test_tenant_server_metadata_has_no_effect(self):
        for flavor_id, expected in (
                (self._flavor(), (None, '4', '4194304', None)),
                (self._flavor(minimum_cpu='3', minimum_memory='3072'),
                 ('3', '4', '4194304', '3145728'))):
            server = self._boot(flavor_id)
            # Compare hard reboot with hard reboot: upstream already adds a
            # USB keyboard on reboot that the first boot lacks.
            self._reboot_server(server, hard=True)
            before = self._stable_xml(server)
            allocation = self._allocation(server)
            # The tenant (non-admin) API sets server metadata.
            self.api_fixture.api.post_server_metadata(
                server['id'], {'minimum_cpu': '1', 'minimum_memory': '64',
                               'xloud_current_vcpus': '1',
                               'xloud_current_memory_mb': '64'})
            self._reboot_server(server, hard=True)
            self.assertEqual(before, self._stable_xml(server))
            self.assertEqual(expected, self._vcpu_and_memory(server))
            self.assertEqual(allocation, self._allocation(server))
            self._delete_server(server)

    def test_no_memory_balloon_warns_once(self):
        self.flags(mem_stats_period_seconds=0, group='libvirt')
        with mock.patch.object(guest_config.LOG, 'warning') as mock_warn:
            flavor_id = self._flavor(minimum_memory='1024')
            first = self._boot(flavor_id)
            second = self._boot(flavor_id)
        for server in (first, second):
            self.assertEqual('1048576', self._vcpu_and_memory(server)[3])
            self.assertEqual('ACTIVE', server['status'])
        mock_warn.assert_called_once()
        self.assertIn('mem_stats_period_seconds', mock_warn.call_args[0][0])

    def test_heal_allocations_claims_the_minimum(self):
        server = self._boot(self._flavor(minimum_cpu='2',
                                         minimum_memory='1024'))
        self._delete_server_allocations(server['id'])
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', io.StringIO()))
        self.assertEqual(
            0, manage.PlacementCommands().heal_allocations(verbose=True))
        self.assertEqual({'VCPU': 2, 'MEMORY_MB': 1024, 'DISK_GB': 1},
                         self._allocation(server))

    def test_resize_between_minimum_flavors(self):
        server = self._boot(self._flavor(minimum_cpu='2',
                                         minimum_memory='1024'))
        new_flavor = self._flavor(vcpu=6, memory_mb=6144, minimum_cpu='3',
                                  minimum_memory='2048')
        with mock.patch('nova.virt.libvirt.driver.LibvirtDriver'
                        '.migrate_disk_and_power_off', return_value='{}'):
            server = self._resize_server(server, new_flavor)
        self.assertEqual(('3', '6', '6291456', '2097152'),
                         self._vcpu_and_memory(server))
        self.assertEqual({'VCPU': 3, 'MEMORY_MB': 2048, 'DISK_GB': 1},
                         self._allocation(server))
        self._confirm_resize(server)
        self.assertEqual({'VCPU': 3, 'MEMORY_MB': 2048, 'DISK_GB': 1},
                         self._get_provider_usages(self.rp_uuid))


class MinimumResourcesRefusedTestCase(MinimumResourcesTestBase):

    REFUSED = (
        ({'minimum_cpu': '5'}, "minimum_cpu=5 exceeds the flavor's vcpus=4"),
        ({'minimum_memory': '4097'},
         "minimum_memory=4097 exceeds the flavor's ram=4096"),
        ({'minimum_cpu': 'abc'}, "'minimum_cpu' must be a whole number"),
        ({'minimum_cpu': '0'}, "'minimum_cpu' must be a whole number"),
        ({'minimum_memory': '-1'}, "'minimum_memory' must be a whole number"),
        ({'minimum_memory': '1.5'},
         "'minimum_memory' must be a whole number"),
        ({'minimum_cpu': '2', 'hw:cpu_policy': 'dedicated'},
         'minimum_cpu=2 cannot be combined with hw:cpu_policy=dedicated'),
        ({'minimum_cpu': '2', 'hw:cpu_policy': 'mixed',
          'hw:cpu_dedicated_mask': '^0'},
         'minimum_cpu=2 cannot be combined with hw:cpu_policy=mixed'),
        ({'minimum_cpu': '2', 'hw:cpu_realtime': 'yes',
          'hw:cpu_realtime_mask': '^0', 'hw:cpu_policy': 'dedicated'},
         'minimum_cpu=2 cannot be combined with hw:cpu_realtime=yes'),
        ({'minimum_cpu': '2', 'hw:numa_nodes': '2'},
         'minimum_cpu=2 cannot be combined with hw:numa_nodes=2'),
        ({'minimum_memory': '1024', 'hw:mem_page_size': 'large'},
         'minimum_memory=1024 cannot be combined with '
         'hw:mem_page_size=large'),
        ({'minimum_memory': '1024', 'hw:locked_memory': 'true',
          'hw:mem_page_size': 'small'},
         'minimum_memory=1024 cannot be combined with '
         'hw:locked_memory=true'),
    )

    def _assert_nothing_claimed(self):
        self.assertEqual({'VCPU': 0, 'MEMORY_MB': 0, 'DISK_GB': 0},
                         self._get_provider_usages(self.rp_uuid))

    def test_extra_spec_api_refuses_invalid_values(self):
        flavor_id = self._flavor()
        self.admin_api.microversion = '2.86'
        for name in ('minimum_cpu', 'minimum_memory'):
            for value in ('abc', '0', '-1', '1.5', ''):
                self._assert_refused(
                    self.admin_api.post_extra_spec, flavor_id,
                    {'extra_specs': {name: value}},
                    expected=(f"extra spec '{name}'",
                              'must be a whole number from 1 to'))
        self.admin_api.post_extra_spec(
            flavor_id, {'extra_specs': {'minimum_cpu': '2'}})

    def test_create_refused(self):
        for specs, message in self.REFUSED:
            # Set at the old microversion, which skips extra spec
            # validation, so that create must catch it.
            flavor_id = self._flavor(**specs)
            self._assert_refused(
                self.api.post_server,
                {'server': self._build_server(flavor_id=flavor_id,
                                              networks='none')},
                expected=(message,))
        self.assertEqual([], self.api.get_servers())
        self.assertEqual([], self.defined)
        self._assert_nothing_claimed()

    def test_create_refused_for_image_property(self):
        image = self._create_image({'hw_cpu_policy': 'dedicated'})
        flavor_id = self._flavor(minimum_cpu='2')
        self._assert_refused(
            self.api.post_server,
            {'server': self._build_server(image_uuid=image['id'],
                                          flavor_id=flavor_id,
                                          networks='none')},
            expected=('minimum_cpu=2 cannot be combined with image property '
                      'hw_cpu_policy=dedicated',))
        self.assertEqual([], self.api.get_servers())

    def test_rebuild_refused(self):
        server = self._boot(self._flavor(minimum_cpu='2'))
        allocation = self._allocation(server)
        image = self._create_image({'hw_cpu_policy': 'dedicated'})
        self._assert_refused(
            self.api.post_server_action, server['id'],
            {'rebuild': {'imageRef': image['id']}},
            expected=('minimum_cpu=2 cannot be combined with image property '
                      'hw_cpu_policy=dedicated',))
        server = self.api.get_server(server['id'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertNotEqual(image['id'], server['image']['id'])
        self.assertEqual(allocation, self._allocation(server))

    def test_resize_refused(self):
        old_flavor = self._flavor(vcpu=2, memory_mb=2048)
        server = self._boot(old_flavor)
        allocation = self._allocation(server)
        for specs, message in self.REFUSED:
            flavor_id = self._flavor(**specs)
            self._assert_refused(
                self.api.post_server_action, server['id'],
                {'resize': {'flavorRef': flavor_id}}, expected=(message,))
        self.api.microversion = '2.47'
        server = self.api.get_server(server['id'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual((2, 2048), (server['flavor']['vcpus'],
                                     server['flavor']['ram']))
        self.assertEqual([], self.admin_api.get_migrations())
        self.assertEqual(allocation, self._allocation(server))
        self.assertEqual(allocation, self._get_provider_usages(self.rp_uuid))
