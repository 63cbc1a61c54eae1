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

"""Nova's own libvirt functional base, on a pip-installed Nova.

``LiveAdjustBase`` is the in-process deployment the functional tests, the
benchmark and ``nova-xloud demo`` share: API, conductor, scheduler,
placement and one libvirt compute on fakelibvirt with the live resize
calls, our plugins loaded through the series' hooks.
"""

import copy
import os
import sys
import time
import urllib.parse

import fixtures
from lxml import etree
from nova.api.openstack.compute import routes as nova_routes
from nova.compute import manager as compute_manager
from nova.conductor import manager as conductor_manager
from nova.tests.fixtures import libvirt as nova_fakelibvirt
from nova.tests.functional.libvirt import base
from nova.virt.libvirt import driver as libvirt_driver
from oslo_utils import units

from nova_xloud.conductor import endpoint
from nova_xloud import store
from nova_xloud.testing import fakelibvirt

ADJUST_URL = '/os-xloud-adjust/%s'
ADJUST_EVENT = 'compute_xloud_adjust'
COMPUTE = 'compute1'
# The image Nova's functional tests boot by default.
DEFAULT_IMAGE = '155d900f-4e14-4e4c-a73d-069cbf4541e6'


def installed_api_paste_config():
    """Nova's api-paste.ini where pip installs it, or None."""
    path = os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')
    return path if os.path.exists(path) else None


class ServersTestBase(base.ServersTestBase):
    """Nova's ServersTestBase, runnable on a pip-installed Nova.

    Nova's conf fixture looks for api-paste.ini beside the nova package,
    where a source tree keeps it; pip installs it in <prefix>/etc/nova.
    """

    def _setup_services(self):
        path = installed_api_paste_config()
        if path:
            self.flags(api_paste_config=path, group='wsgi')
        super()._setup_services()


class XloudPluginsFixture(fixtures.Fixture):
    """Load our plugins through the hooks' entry points, afresh per test.

    The hooks cache their plugins once per process; the caches are cleared
    so each test sees the installed entry points (and a test may take an
    RPC endpoint away to play a compute or a conductor that does not run
    nova-xloud). So is the boot listener a compute registers.
    """

    def __init__(self, endpoints=True, conductor_endpoint=True):
        self.endpoints = endpoints
        self.conductor_endpoint = conductor_endpoint

    def _setUp(self):
        for func in (nova_routes._plugin_routes,
                     compute_manager._rpc_endpoint_plugins,
                     conductor_manager._rpc_endpoint_plugins,
                     libvirt_driver._guest_config_hooks):
            func.cache_clear()
            self.addCleanup(func.cache_clear)
        # Each test's nova-compute registers its own boot listener.
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.virt.libvirt_adjust._boot_listener', None))
        if not self.endpoints:
            self.useFixture(fixtures.MockPatch(
                'nova.compute.manager._rpc_endpoint_plugins',
                return_value=[]))
        if not self.conductor_endpoint:
            self.useFixture(fixtures.MockPatch(
                'nova.conductor.manager._rpc_endpoint_plugins',
                return_value=[]))


class ComputeWithoutDatabaseFixture(fixtures.Fixture):
    """Every records write goes through nova-conductor, as in nova-compute.

    The in-process services share one database connection; this makes the
    records store act as it does where there is none, so the writes take
    the conductor hook, the RPC namespace and its serialisation. The
    conductor endpoint's calls are counted in ``swaps``.
    """

    def _setUp(self):
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.store._database_here', return_value=False))
        store._conductor_api.cache_clear()
        self.addCleanup(store._conductor_api.cache_clear)
        store._warn_conductor_without_endpoint.cache_clear()
        self.addCleanup(store._warn_conductor_without_endpoint.cache_clear)
        self.swaps = []
        real = endpoint.XloudConductorEndpoint.swap_records

        def counted(endpoint_self, context, instance_uuid, expected,
                    changes):
            self.swaps.append(instance_uuid)
            return real(endpoint_self, context, instance_uuid, expected,
                        changes)
        self.useFixture(fixtures.MockPatchObject(
            endpoint.XloudConductorEndpoint, 'swap_records', counted))


class LiveAdjustBase(ServersTestBase):
    """One libvirt compute that can change its guests live."""

    microversion = '2.84'
    XLOUD_ENDPOINT = True
    XLOUD_CONDUCTOR_ENDPOINT = True
    EVENT_TIMEOUT = 20
    # Nova's helpers wait 5 s for a server state or a migration status.
    # The suites run three workers on two cores, where a move can take
    # longer; a state never reached still fails, after WAIT_TIMEOUT.
    WAIT_TIMEOUT = 30

    def setUp(self):
        # Before the API fixture builds the router through the hook.
        self.useFixture(XloudPluginsFixture(
            endpoints=self.XLOUD_ENDPOINT,
            conductor_endpoint=self.XLOUD_CONDUCTOR_ENDPOINT))
        super().setUp()
        self.libvirt_ext = self.useFixture(
            fakelibvirt.LiveResizeLibvirtFixture())
        self.start_compute(COMPUTE)
        self.rp_uuid = self.compute_rp_uuids[COMPUTE]

    def _wait_for_state_change(self, server, expected_status,
                               max_retries=None, **kwargs):
        return super()._wait_for_state_change(
            server, expected_status,
            max_retries=max_retries or int(self.WAIT_TIMEOUT / 0.5),
            **kwargs)

    def _wait_for_migration_status(self, server, expected_statuses):
        """The server's migration once in one of the statuses."""
        statuses = [status.lower() for status in expected_statuses]
        deadline = time.monotonic() + self.WAIT_TIMEOUT
        while True:
            found = [m for m in self.admin_api.api_get(
                '/os-migrations').body['migrations']
                if m['instance_uuid'] == server['id']]
            for migration in found:
                if migration['status'].lower() in statuses:
                    return migration
            if time.monotonic() > deadline:
                self.fail('migration of %s not in %s: %s'
                          % (server['id'], expected_statuses,
                             [m['status'] for m in found]))
            time.sleep(0.5)

    def _flavor(self, vcpu=4, memory_mb=4096, name=None, **extra_specs):
        return self._create_flavor(name=name, vcpu=vcpu, memory_mb=memory_mb,
                                   disk=1, ephemeral=0,
                                   extra_spec=extra_specs)

    def _boot(self, flavor_id=None, name=None, image=None):
        flavor_id = flavor_id or self._flavor(minimum_cpu='2',
                                              minimum_memory='1024')
        return self._create_server(name=name, flavor_id=flavor_id,
                                   image_uuid=image, networks='none')

    def _image_with_agent(self):
        """A copy of the default image with hw_qemu_guest_agent=yes."""
        meta = copy.deepcopy(self.glance.show(None, DEFAULT_IMAGE))
        meta.pop('id')
        meta['name'] = 'with-agent'
        meta['properties'] = dict(meta.get('properties', {}),
                                  hw_qemu_guest_agent='yes')
        return self.glance.create(None, meta)['id']

    def _no_disk_to_move(self):
        """Resizes and migrations skip the disk copy of the fake host."""
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver'
            '.migrate_disk_and_power_off', return_value='{}'))

    def _allow_resize_here(self):
        """Resize to the same host, with no disk to move."""
        self.flags(allow_resize_to_same_host=True)
        self._no_disk_to_move()

    def _post(self, server, body, api=None):
        api = api or self.admin_api
        return api.api_post(ADJUST_URL % server['id'], body,
                            check_response_status=[202]).body

    def _wait_event(self, server, request_id, result=None):
        """Poll the action until its compute event has finished."""
        deadline = time.monotonic() + self.EVENT_TIMEOUT
        while True:
            action = self.admin_api.get_instance_action_details(
                server['id'], request_id)
            for event in action['events']:
                if event['event'] == ADJUST_EVENT and event['result']:
                    if result is not None:
                        self.assertEqual(result, event['result'], event)
                    return action, event
            if time.monotonic() > deadline:
                self.fail('event %s of %s did not finish: %s' % (
                    ADJUST_EVENT, request_id, action))
            time.sleep(0.05)

    def _domain(self, server):
        conn = self.computes[COMPUTE].driver._host.get_connection()
        return conn.lookupByUUIDString(server['id'])

    def _live(self, server):
        live = self.libvirt_ext.live(self._domain(server))
        return live['vcpus'], live['memory_kib'] // units.Ki

    def _config(self, server):
        config = self.libvirt_ext.config(self._domain(server))
        return config['vcpus'], config['memory_kib'] // units.Ki

    def _leave_free_memory(self, memory_mb):
        """Reserve all of compute1's MEMORY_MB but memory_mb in placement."""
        url = '/resource_providers/%s/inventories' % self.rp_uuid
        inventory = self.placement.get(url).body
        memory = inventory['inventories']['MEMORY_MB']
        usage = self._get_provider_usages(self.rp_uuid)['MEMORY_MB']
        memory['reserved'] = memory['total'] - usage - memory_mb
        self.placement.put(url + '/MEMORY_MB', dict(
            memory, resource_provider_generation=inventory[
                'resource_provider_generation']))

    def _allocation(self, server):
        allocations = self._get_allocations_by_server_uuid(server['id'])
        resources = allocations[self.rp_uuid]['resources']
        return resources['VCPU'], resources['MEMORY_MB']

    def _boot_xml(self, server):
        return self.libvirt_ext.boot_xml(self._domain(server))


class MultiComputeBase(LiveAdjustBase):
    """Several libvirt computes, for moves between them.

    ``compute1`` is started by LiveAdjustBase; a test boots its servers
    there first, then starts the others with ``_start_computes`` so that
    every server starts on ``compute1``. Live migrations succeed: the fake
    migration starts the destination XML Nova built on the host named in
    the libvirt URI and, as real libvirt does with Nova's
    ``VIR_MIGRATE_PERSIST_DEST``, keeps it defined there from the
    ``persistent_xml`` Nova passes (the guest's live values), so that a
    soft reboot or a stop after the move finds a persistent domain.
    """

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.migrateToURI3',
            self._fake_live_migration))

    def _start_computes(self, *hostnames, host_info=None):
        for hostname in hostnames:
            self.start_compute(hostname, host_info=host_info)

    def _connection(self, host):
        return self.computes[host].driver._host.get_connection()

    def _fake_live_migration(self, domain, destination, params, flags):
        connection = self._connection(
            urllib.parse.urlparse(destination).hostname)
        if flags & nova_fakelibvirt.VIR_MIGRATE_PERSIST_DEST:
            connection.defineXML(params.get(
                'persistent_xml', params['destination_xml'])).create()
        else:
            connection.createXML(params['destination_xml'], 0)
        domain.complete_job()

    def _domain_on(self, host, server):
        """The server's domain on host, None if it has none there."""
        try:
            return self._connection(host).lookupByUUIDString(server['id'])
        except nova_fakelibvirt.libvirtError:
            return None

    def _guest_on(self, host, server):
        """(vCPUs, memory MiB) of the running guest and of its XML."""
        domain = self._domain_on(host, server)
        live = self.libvirt_ext.live(domain)
        tree = etree.fromstring(domain.XMLDesc(0))
        vcpu = tree.find('./vcpu')
        xml_vcpus = int(vcpu.get('current') or vcpu.text)
        xml_memory = int(tree.findtext('./currentMemory')) // units.Ki
        return ((live['vcpus'], live['memory_kib'] // units.Ki),
                (xml_vcpus, xml_memory))

    def _allocations_by_host(self, server):
        """{host: (VCPU, MEMORY_MB)} of the server's allocations."""
        hosts = {rp: host for host, rp in self.compute_rp_uuids.items()}
        allocations = self._get_allocations_by_server_uuid(server['id'])
        return {hosts[rp]: (alloc['resources'].get('VCPU'),
                            alloc['resources'].get('MEMORY_MB'))
                for rp, alloc in allocations.items()}

    def _adjust_and_wait(self, server, vcpus, memory_mb, persist):
        body = {'current_vcpus': vcpus, 'current_memory_mb': memory_mb,
                'persist': persist}
        request_id = self._post(server, body)['adjustment']['request_id']
        self._wait_event(server, request_id, 'Success')
