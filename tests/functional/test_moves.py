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

"""Moving servers keeps the guest, GET and placement equal.

Each test boots four servers of 4 vCPUs / 4096 MiB on compute1, one of
each kind below, starts the other computes, moves every server and then
checks, per server, that the running guest and its domain XML on the host
where it runs, ``GET /os-xloud-adjust`` and its allocations agree on the
expected values, and that no other provider holds anything for it.

persisted
    minimum 1 / 1024, adjusted to 3 / 3072 with ``persist: true``;
transient
    the same flavor, adjusted to 3 / 3072 with ``persist: false``;
minimum
    the same flavor, never adjusted (boots at its minimum);
plain
    a flavor without the minimum specs, never adjusted.
"""

import fixtures
from nova.cmd import manage
from nova.tests.fixtures import libvirt as nova_fakelibvirt
from nova.tests.functional.api import client

from nova_xloud.testing import base

PERSISTED = 'persisted'
TRANSIENT = 'transient'
MINIMUM = 'minimum'
PLAIN = 'plain'
KINDS = (PERSISTED, TRANSIENT, MINIMUM, PLAIN)

ADJUSTED = (3, 3072)
FLAVOR_MINIMUM = (1, 1024)
FLAVOR_MAXIMUM = (4, 4096)

# What each kind has after a move that keeps the running guest (live
# migration): what it had before.
GUEST_KEPT = {PERSISTED: ADJUSTED, TRANSIENT: ADJUSTED,
              MINIMUM: FLAVOR_MINIMUM, PLAIN: FLAVOR_MAXIMUM}
# After a move that defines the domain again (cold migration, revert,
# evacuation, unshelve): the persisted values, else the flavor's minimum.
BOOTED_ANEW = dict(GUEST_KEPT, **{TRANSIENT: FLAVOR_MINIMUM})

# A host with room for a server at its flavor minimum, not at 3 / 3072:
# two host CPUs (no more than 2 VCPU for one server) and 2048 MiB once the
# default 512 MiB are reserved (fakelibvirt reports kB_mem as MiB).
SMALL_HOST = nova_fakelibvirt.HostInfo(
    cpu_nodes=1, cpu_sockets=1, cpu_cores=2, cpu_threads=1, kB_mem=2560)


class MovesTestBase(base.MultiComputeBase):

    # Each test moves four servers one after the other, on two cores
    # shared with the other test workers.
    TIMEOUT_SCALING_FACTOR = 4

    def setUp(self):
        super().setUp()
        self._no_disk_to_move()
        self.flags(cores=1000, ram=1000000, group='quota')
        self.flavor_id = self._flavor(minimum_cpu='1',
                                      minimum_memory='1024')
        self.plain_flavor_id = self._flavor()

    def _boot_kind(self, kind):
        flavor_id = self.plain_flavor_id if kind == PLAIN else self.flavor_id
        server = self._boot(flavor_id=flavor_id, name=kind)
        if kind in (PERSISTED, TRANSIENT):
            self._adjust_and_wait(server, *ADJUSTED,
                                  persist=kind == PERSISTED)
        return server

    def _boot_all(self, kinds=KINDS):
        return {kind: self._boot_kind(kind) for kind in kinds}

    def _host(self, server):
        return self.admin_api.get_server(server['id'])[
            'OS-EXT-SRV-ATTR:host']

    def _shown(self, server):
        shown = self.admin_api.api_get(
            base.ADJUST_URL % server['id']).body['adjustment']
        return shown['current_vcpus'], shown['current_memory_mb']

    def _assert_server(self, kind, server, want, host=None):
        """Guest, XML, GET and placement agree on want, all on one host."""
        host = host or self._host(server)
        self.assertEqual((want, want), self._guest_on(host, server), kind)
        self.assertEqual(want, self._shown(server), kind)
        self.assertEqual({host: want}, self._allocations_by_host(server),
                         kind)
        return host

    def _assert_all(self, servers, expected, host=None, not_on=None):
        for kind, server in servers.items():
            on = self._assert_server(kind, server, expected[kind], host)
            self.assertNotEqual(not_on, on, kind)

    def _hard_reboot(self, server):
        self.admin_api.post_server_action(server['id'],
                                          {'reboot': {'type': 'HARD'}})
        self._wait_for_state_change(server, 'ACTIVE')

    def _migrate_and_wait(self, server, host=None):
        body = {'host': host} if host else None
        self.admin_api.post_server_action(server['id'], {'migrate': body})
        self._wait_for_state_change(server, 'VERIFY_RESIZE')

    def _live_migrate_and_wait(self, server, host=None, block='auto'):
        self.admin_api.post_server_action(
            server['id'],
            {'os-migrateLive': {'host': host, 'block_migration': block}})
        self._wait_for_migration_status(server, ['completed'])
        self._wait_for_state_change(server, 'ACTIVE')

    def _source_down(self, host):
        self.computes[host].stop()
        service = self.admin_api.get_services(
            host=host, binary='nova-compute')[0]
        self.admin_api.put_service_force_down(service['id'], True)
        return service

    def _source_back(self, host, service):
        self.restart_compute_service(host)
        self.admin_api.put_service_force_down(service['id'], False)

    def _disable(self, host):
        service = self.admin_api.get_services(
            host=host, binary='nova-compute')[0]
        self.admin_api.put_service(service['id'], {'status': 'disabled'})


class ColdMoveTestCase(MovesTestBase):

    def test_cold_migrate_confirm(self):
        servers = self._boot_all()
        self._assert_all(servers, GUEST_KEPT, host='compute1')
        self._start_computes('compute2')
        for kind, server in servers.items():
            self._migrate_and_wait(server)
            self._confirm_resize(server)
        self._assert_all(servers, BOOTED_ANEW, not_on='compute1')

    def test_cold_migrate_to_host_revert(self):
        servers = self._boot_all()
        self._start_computes('compute2')
        for kind, server in servers.items():
            self._migrate_and_wait(server, host='compute2')
            self._assert_server(kind, server, BOOTED_ANEW[kind],
                                host='compute2')
            self._revert_resize(server)
        # The source guest is defined again: a persist:false adjustment is
        # undone and the allocation, which came back as it was when the
        # migration started, follows.
        self._assert_all(servers, BOOTED_ANEW, host='compute1')


class ResizeTestCase(MovesTestBase):

    def _resize_all(self, new_flavor_id, expected):
        servers = self._boot_all()
        self._start_computes('compute2')
        for kind, server in servers.items():
            self._resize_server(server, new_flavor_id)
            self._assert_server(kind, server, expected, host='compute2')
        return servers

    def test_resize_confirm_to_flavor_with_specs(self):
        new = self._flavor(vcpu=6, memory_mb=6144, minimum_cpu='2',
                           minimum_memory='2048')
        servers = self._resize_all(new, (2, 2048))
        for server in servers.values():
            self._confirm_resize(server)
        self._assert_all(servers, dict.fromkeys(KINDS, (2, 2048)),
                         host='compute2')

    def test_resize_revert_from_flavor_without_specs(self):
        new = self._flavor(vcpu=6, memory_mb=6144)
        servers = self._resize_all(new, (6, 6144))
        for server in servers.values():
            self._revert_resize(server)
        self._assert_all(servers, BOOTED_ANEW, host='compute1')


class LiveMigrateTestCase(MovesTestBase):

    def test_live_migrate_keeps_live_values(self):
        servers = self._boot_all()
        self._start_computes('compute2')
        for server in servers.values():
            self._live_migrate_and_wait(server)
        self._assert_all(servers, GUEST_KEPT, not_on='compute1')
        # The persist:false adjustment is still undone by a hard reboot.
        for server in servers.values():
            self._hard_reboot(server)
        self._assert_all(servers, BOOTED_ANEW)

    def test_live_migrate_to_host(self):
        servers = self._boot_all()
        self._start_computes('compute2', 'compute3')
        for server in servers.values():
            self._live_migrate_and_wait(server, host='compute3')
        self._assert_all(servers, GUEST_KEPT, host='compute3')

    def test_block_migration(self):
        # The fake hosts share one instances path: make each see its own,
        # as block migration requires, with no disk file to copy.
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver'
            '._check_shared_storage_test_file', return_value=False))
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver.get_instance_disk_info',
            return_value='[]'))
        servers = self._boot_all()
        self._start_computes('compute2')
        for server in servers.values():
            self._live_migrate_and_wait(server, block=True)
        self._assert_all(servers, GUEST_KEPT, not_on='compute1')


class EvacuateTestCase(MovesTestBase):

    def _evacuate_all(self, target=None):
        servers = self._boot_all()
        self._start_computes(*(('compute2', 'compute3') if target
                               else ('compute2',)))
        service = self._source_down('compute1')
        for server in servers.values():
            args = {'host': target} if target else None
            self._evacuate_server(server, extra_post_args=args,
                                  expected_host=target,
                                  expected_state='ACTIVE')
        for kind, server in servers.items():
            # Until the source comes back its allocation stays.
            host = self._host(server)
            self.assertNotEqual('compute1', host)
            self.assertEqual({'compute1', host},
                             set(self._allocations_by_host(server)), kind)
        self._source_back('compute1', service)
        self._assert_all(servers, BOOTED_ANEW, host=target,
                         not_on='compute1')
        for server in servers.values():
            self.assertIsNone(self._domain_on('compute1', server))

    def test_evacuate(self):
        self._evacuate_all()

    def test_adjust_before_the_source_returns(self):
        # The allocation holds both hosts until the source comes back: the
        # adjustment changes the destination's part only.
        server = self._boot_kind(MINIMUM)
        self._start_computes('compute2')
        service = self._source_down('compute1')
        self._evacuate_server(server, expected_host='compute2',
                              expected_state='ACTIVE')
        self._adjust_and_wait(server, *ADJUSTED, persist=True)
        self.assertEqual({'compute1': FLAVOR_MINIMUM, 'compute2': ADJUSTED},
                         self._allocations_by_host(server))
        self._source_back('compute1', service)
        self._assert_server(MINIMUM, server, ADJUSTED, host='compute2')

    def test_evacuate_to_host(self):
        self._evacuate_all(target='compute3')


class ShelveTestCase(MovesTestBase):

    def test_shelve_unshelve_in_place(self):
        self.flags(shelved_offload_time=-1)
        servers = self._boot_all()
        for kind, server in servers.items():
            self._shelve_server(server, expected_state='SHELVED')
            self.assertEqual({'compute1': GUEST_KEPT[kind]},
                             self._allocations_by_host(server), kind)
            self._unshelve_server(server)
        self._assert_all(servers, BOOTED_ANEW, host='compute1')

    def test_shelve_offload_unshelve(self):
        servers = self._boot_all()
        for kind, server in servers.items():
            self._shelve_server(server)
            self.assertEqual({}, self._allocations_by_host(server), kind)
        self._start_computes('compute2')
        self._disable('compute1')
        for server in servers.values():
            self._unshelve_server(server)
        self._assert_all(servers, BOOTED_ANEW, host='compute2')


class NoRoomTestCase(MovesTestBase):
    """A move that has no room for the server's values fails as upstream.

    The destination has room for the flavor's minimum, which a server at
    its minimum shows by moving there, but not for 3 / 3072.
    """

    def setUp(self):
        super().setUp()
        self.servers = self._boot_all((PERSISTED, MINIMUM))
        self._start_computes('small', host_info=SMALL_HOST)

    def _refused(self, server, action):
        # Casts run as calls in this deployment, so the scheduler's
        # NoValidHost reaches the API whose request started the move.
        e = self.assertRaises(client.OpenStackApiException,
                              self.admin_api.post_server_action,
                              server['id'], action)
        self.assertIn('NoValidHost', e.response.text)

    def _assert_unmoved(self):
        server = self.servers[PERSISTED]
        self.assertEqual('ACTIVE', self.admin_api.get_server(
            server['id'])['status'])
        self._assert_server(PERSISTED, server, ADJUSTED, host='compute1')
        self.assertIsNone(self._domain_on('small', server))

    def test_cold_migrate(self):
        self._refused(self.servers[PERSISTED], {'migrate': None})
        self._assert_unmoved()
        self._migrate_and_wait(self.servers[MINIMUM])
        self._confirm_resize(self.servers[MINIMUM])
        self._assert_server(MINIMUM, self.servers[MINIMUM], FLAVOR_MINIMUM,
                            host='small')

    def test_live_migrate(self):
        server = self.servers[PERSISTED]
        self._refused(server, {'os-migrateLive': {
            'host': None, 'block_migration': 'auto'}})
        self._wait_for_state_change(server, 'ACTIVE')
        self._assert_unmoved()
        self._live_migrate_and_wait(self.servers[MINIMUM])
        self._assert_server(MINIMUM, self.servers[MINIMUM], FLAVOR_MINIMUM,
                            host='small')

    def test_evacuate(self):
        self._source_down('compute1')
        server = self.servers[PERSISTED]
        self._refused(server, {'evacuate': {}})
        self._wait_for_migration_status(server, ['error'])
        self.assertEqual('compute1', self._host(server))
        self.assertEqual({'compute1': ADJUSTED},
                         self._allocations_by_host(server))
        self.assertIsNone(self._domain_on('small', server))
        self._evacuate_server(self.servers[MINIMUM], expected_host='small',
                              expected_state='ACTIVE')

    def test_unshelve(self):
        server = self.servers[PERSISTED]
        self._shelve_server(server)
        self._disable('compute1')
        self.admin_api.post_server_action(server['id'], {'unshelve': None})
        self._wait_for_state_change(server, 'SHELVED_OFFLOADED')
        self.assertEqual({}, self._allocations_by_host(server))
        self.assertIsNone(self._domain_on('small', server))
        self._shelve_server(self.servers[MINIMUM])
        self._unshelve_server(self.servers[MINIMUM])
        self._assert_server(MINIMUM, self.servers[MINIMUM], FLAVOR_MINIMUM,
                            host='small')


class HealAllocationsTestCase(MovesTestBase):
    """nova-manage placement heal_allocations and audit, in process."""

    def test_heal_and_audit_use_current_values(self):
        servers = self._boot_all()
        for server in servers.values():
            self.placement.delete('/allocations/%s' % server['id'])
            self.assertEqual({}, self._allocations_by_host(server))
        commands = manage.PlacementCommands()
        self.assertEqual(0, commands.heal_allocations(verbose=True))
        self._assert_all(servers, GUEST_KEPT, host='compute1')
        # 4: nothing left to heal; the values just written are accepted.
        self.assertEqual(4, commands.heal_allocations(verbose=True))
        # 0: no orphaned allocation on any provider.
        self.assertEqual(0, commands.audit(verbose=True))
        self._assert_all(servers, GUEST_KEPT, host='compute1')
