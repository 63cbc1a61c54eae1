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

"""Live adjust under concurrency, placement faults and hostile input."""

import threading
from unittest import mock

import fixtures
from keystoneauth1 import exceptions as ks_exc
from nova.api import wsgi
from nova import context as nova_context
from nova import objects
from nova.scheduler.client import report
from nova.tests.functional.api import client
from oslo_utils.fixture import uuidsentinel as uuids
from wsgi_intercept import interceptor

from nova_xloud.compute import adjust
from nova_xloud.compute import drift
from nova_xloud.compute import rpcapi
from nova_xloud import records
from nova_xloud import store
from nova_xloud.testing import base

URL = base.ADJUST_URL


class AdjustTestBase(base.LiveAdjustBase):

    def setUp(self):
        super().setUp()
        self.ctxt = nova_context.get_admin_context()
        self.casts = []
        real_cast = rpcapi.XloudComputeAPI.adjust

        def cast(rpc, ctxt, instance, vcpus, memory_mb, persist, sequence,
                 force=False):
            self.casts.append((ctxt.request_id, sequence, vcpus, memory_mb))
            return real_cast(rpc, ctxt, instance, vcpus, memory_mb, persist,
                             sequence, force=force)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.compute.rpcapi.XloudComputeAPI.adjust', cast))

    def _records(self, server):
        return store.read(self.ctxt, server['id'])

    def _sequence(self, server):
        return int(self._records(server).get(records.SEQUENCE, 0))

    def _adjust_actions(self, server):
        return [a for a in self.admin_api.get_instance_actions(server['id'])
                if a['action'] == 'xloud-adjust']

    def _show(self, server):
        return self.admin_api.api_get(URL % server['id']).body['adjustment']

    def _post_raw(self, server, raw, api=None):
        api = api or self.admin_api
        return api.api_request(URL % server['id'], method='POST', body=raw,
                               headers={'Content-Type': 'application/json'},
                               check_response_status=False)

    def _snapshot(self, server):
        return (len(self._adjust_actions(server)), self._sequence(server),
                self._allocation(server), self._live(server),
                self._records(server))

    def _assert_agree(self, server, expected):
        """Guest, GET, allocation agree; nothing pending or stale."""
        self.assertEqual(expected, self._live(server))
        shown = self._show(server)
        self.assertEqual(expected, (shown['current_vcpus'],
                                    shown['current_memory_mb']))
        self.assertEqual(expected, self._allocation(server))
        self.assertNotEqual('pending', shown['last_status'])
        self.assertNotIn(records.ALLOCATION_STALE, self._records(server))
        self.assertIsNone(shown['allocation_stale'])
        return shown


class MalformedInputTestCase(AdjustTestBase):

    # (raw JSON body, text the 400 must contain)
    BODIES = [
        ('{"current_vcpus": "3\\n"}', 'current_vcpus'),
        ('{"current_vcpus": "\\n3"}', 'current_vcpus'),
        ('{"current_vcpus": "3\\r\\n"}', 'current_vcpus'),
        ('{"current_vcpus": " 3"}', 'current_vcpus'),
        ('{"current_vcpus": "3 "}', 'current_vcpus'),
        ('{"current_vcpus": "\\t3"}', 'current_vcpus'),
        ('{"current_vcpus": "3\\u0000"}', 'current_vcpus'),
        ('{"current_vcpus": "+3"}', 'current_vcpus'),
        ('{"current_vcpus": "-3"}', 'current_vcpus'),
        ('{"current_vcpus": "03"}', 'current_vcpus'),
        ('{"current_vcpus": "0"}', 'current_vcpus'),
        ('{"current_vcpus": "00"}', 'current_vcpus'),
        ('{"current_vcpus": ""}', 'current_vcpus'),
        ('{"current_vcpus": "3.0"}', 'current_vcpus'),
        ('{"current_vcpus": "3e0"}', 'current_vcpus'),
        ('{"current_vcpus": "0x3"}', 'current_vcpus'),
        ('{"current_vcpus": "3_0"}', 'current_vcpus'),
        ('{"current_vcpus": "\\uff13"}', 'current_vcpus'),
        ('{"current_vcpus": "\\u0663"}', 'current_vcpus'),
        ('{"current_vcpus": "\\u00b3"}', 'current_vcpus'),
        ('{"current_vcpus": "three"}', 'current_vcpus'),
        ('{"current_vcpus": "99999999999"}', 'current_vcpus'),
        ('{"current_vcpus": 3.0}', 'current_vcpus'),
        ('{"current_vcpus": 3.5}', 'current_vcpus'),
        ('{"current_vcpus": 3e0}', 'current_vcpus'),
        ('{"current_vcpus": 1e400}', 'current_vcpus'),
        ('{"current_vcpus": -3}', 'current_vcpus'),
        ('{"current_vcpus": -0}', 'current_vcpus'),
        ('{"current_vcpus": 0}', 'current_vcpus'),
        ('{"current_vcpus": 2147483648}', 'current_vcpus'),
        ('{"current_vcpus": 99999999999999999999999}', 'current_vcpus'),
        ('{"current_vcpus": true}', 'current_vcpus'),
        ('{"current_vcpus": false}', 'current_vcpus'),
        ('{"current_vcpus": null}', 'current_vcpus'),
        ('{"current_vcpus": [3]}', 'current_vcpus'),
        ('{"current_vcpus": {"value": 3}}', 'current_vcpus'),
        ('{"current_vcpus": NaN}', 'current_vcpus'),
        ('{"current_vcpus": Infinity}', 'current_vcpus'),
        ('{"current_memory_mb": "2048\\n"}', 'current_memory_mb'),
        ('{"current_memory_mb": " 2048"}', 'current_memory_mb'),
        ('{"current_memory_mb": "02048"}', 'current_memory_mb'),
        ('{"current_memory_mb": "2048.0"}', 'current_memory_mb'),
        ('{"current_memory_mb": 2048.0}', 'current_memory_mb'),
        ('{"current_memory_mb": 2e3}', 'current_memory_mb'),
        ('{"current_memory_mb": "2e3"}', 'current_memory_mb'),
        ('{"current_memory_mb": true}', 'current_memory_mb'),
        ('{"current_memory_mb": null}', 'current_memory_mb'),
        ('{"current_memory_mb": "\\uff12\\uff10\\uff14\\uff18"}',
         'current_memory_mb'),
        ('{"current_memory_mb": []}', 'current_memory_mb'),
        ('{"current_memory_mb": -2048}', 'current_memory_mb'),
        ('{"current_vcpus": 3, "current_memory_mb": "2048 "}',
         'current_memory_mb'),
        ('{"current_vcpus": "3\\n", "current_memory_mb": 2048}',
         'current_vcpus'),
        # In the right form, out of the flavor's range: the range is named.
        ('{"current_vcpus": 5}', 'from 2 to 4'),
        ('{"current_vcpus": "1"}', 'from 2 to 4'),
        ('{"current_memory_mb": 4097}', 'from 1024 to 4096'),
        ('{"current_memory_mb": "512"}', 'from 1024 to 4096'),
        ('{"current_vcpus": "9999999999"}', 'current_vcpus'),
        # persist
        ('{"current_vcpus": 3, "persist": "true"}', 'persist'),
        ('{"current_vcpus": 3, "persist": 1}', 'persist'),
        ('{"current_vcpus": 3, "persist": 0}', 'persist'),
        ('{"current_vcpus": 3, "persist": null}', 'persist'),
        ('{"current_vcpus": 3, "persist": "yes"}', 'persist'),
        ('{"current_vcpus": 3, "persist": []}', 'persist'),
        ('{"current_vcpus": 3, "persist": {}}', 'persist'),
        # Unknown keys
        ('{"current_vcpus": 3, "cpus": 3}', 'cpus'),
        ('{"current_vcpus ": 3}', 'current_vcpus '),
        ('{"CURRENT_VCPUS": 3}', 'CURRENT_VCPUS'),
        ('{"current_vcpus": 3, "server_id": "x"}', 'server_id'),
        ('{"adjustment": {"current_vcpus": 3}}', 'adjustment'),
        # No amount, empty or non-object bodies
        ('{}', 'current_vcpus'),
        ('{"persist": true}', 'current_vcpus'),
        ('', 'not of type'),
        ('null', 'not of type'),
        ('[]', 'not of type'),
        ('[{"current_vcpus": 3}]', 'not of type'),
        ('3', 'not of type'),
        ('"3"', 'not of type'),
        ('true', 'not of type'),
        ('{"current_vcpus": 3', ''),
        ('current_vcpus=3', ''),
    ]

    def test_malformed_bodies_change_nothing(self):
        self.assertGreaterEqual(len(self.BODIES), 60)
        server = self._boot()
        before = self._snapshot(server)
        for raw, text in self.BODIES:
            response = self._post_raw(server, raw)
            self.assertEqual(400, response.status_code, raw)
            self.assertIn(text, response.text, raw)
        self.assertEqual(before, self._snapshot(server))
        self.assertEqual([], self.casts)
        self.assertEqual(0, self._sequence(server))


class ConcurrentAdjustTestCase(AdjustTestBase):

    WANTED = [(2 + n % 3, 1024 + 256 * (n % 13)) for n in range(20)]

    def _post_all(self, server, apis):
        responses = [None] * len(self.WANTED)

        def post(index):
            vcpus, memory = self.WANTED[index]
            api = apis[index % len(apis)]
            responses[index] = api.api_post(
                URL % server['id'],
                {'current_vcpus': vcpus, 'current_memory_mb': memory},
                check_response_status=False)
        threads = [threading.Thread(target=post, args=(index,))
                   for index in range(len(self.WANTED))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return responses

    def _check(self, server, responses):
        for response in responses:
            self.assertEqual(202, response.status, response.content)
        request_ids = {r.body['adjustment']['request_id']: index
                       for index, r in enumerate(responses)}
        # Every accepted request got its own number: no bump was lost.
        self.assertEqual(sorted(request_ids),
                         sorted(rid for rid, _, _, _ in self.casts))
        sequences = [seq for _, seq, _, _ in self.casts]
        self.assertEqual(list(range(1, len(responses) + 1)),
                         sorted(sequences))
        self.assertEqual(len(responses), self._sequence(server))
        for request_id in request_ids:
            self._wait_event(server, request_id)
        # The last accepted request is the one GET names, with success,
        # and the guest, the records and placement have its values.
        last_id, _, vcpus, memory = max(self.casts, key=lambda c: c[1])
        shown = self._assert_agree(server, (vcpus, memory))
        self.assertEqual((last_id, 'success'),
                         (shown['last_request_id'], shown['last_status']))
        self.assertEqual((vcpus, memory), self._config(server))

    def test_twenty_at_once_from_threads(self):
        server = self._boot()
        self._check(server, self._post_all(server, [self.admin_api]))

    def _second_api(self):
        """Another nova-api: its own WSGI app, router and controllers."""
        app = wsgi.Loader().load_app('osapi_compute')
        endpoint = 'http://%s:80/' % uuids.second_api
        intercept = interceptor.RequestsInterceptor(lambda: app,
                                                    url=endpoint)
        intercept.install_intercept()
        self.addCleanup(intercept.uninstall_intercept)
        api = client.TestOpenStackClient(
            'admin', endpoint + 'v2.1',
            project_id=self.api_fixture.project_id,
            roles=['reader', 'member', 'admin'])
        api.microversion = self.microversion
        return api

    def test_twenty_at_once_through_two_apis(self):
        server = self._boot()
        second = self._second_api()
        self._check(server, self._post_all(server, [self.admin_api, second]))

    def test_different_servers_each_get_their_own_sequence(self):
        servers = [self._boot(), self._boot()]
        for server in servers:
            self._post(server, {'current_vcpus': 3})
            self._post(server, {'current_vcpus': 4})
        for server in servers:
            self.assertEqual(2, self._sequence(server))


class ConcurrentThroughConductorTestCase(ConcurrentAdjustTestCase):
    """The same, with every records write made by nova-conductor.

    As where nova-compute (and here nova-api too) has no database: the
    compare-and-swap runs in the conductor endpoint, and a refused swap is
    worked out again on the records it returns.
    """

    def setUp(self):
        super().setUp()
        self.conductor = self.useFixture(
            base.ComputeWithoutDatabaseFixture())

    def _check(self, server, responses):
        super()._check(server, responses)
        # Every start, and at least the last adjustment's result.
        self.assertGreater(len(self.conductor.swaps), len(responses))


class PlacementFaultsTestCase(AdjustTestBase):

    def setUp(self):
        super().setUp()
        self.server = self._boot()
        self.api_client = report.report_client_singleton()
        self.compute_client = self.computes[base.COMPUTE].manager.reportclient

    def _refused(self, status, body, *texts):
        before = self._snapshot(self.server)
        e = self.assertRaises(client.OpenStackApiException,
                              self.admin_api.api_post, URL % self.server['id'],
                              body, check_response_status=[202])
        self.assertEqual(status, e.response.status_code, e.response.text)
        for text in texts:
            self.assertIn(text, e.response.text)
        for text in ('keystoneauth', 'ConnectFailure', 'Traceback'):
            self.assertNotIn(text, e.response.text)
        self.assertEqual(before, self._snapshot(self.server))
        self.assertEqual([], self.casts)
        return e

    def _fail(self, reportclient, method, error=None, response=None):
        real = getattr(reportclient, method)
        active = [True]

        def call(url, *args, **kwargs):
            if not active or not url.startswith('/allocations/'):
                return real(url, *args, **kwargs)
            if error:
                raise error
            return response
        self.useFixture(fixtures.MockPatchObject(reportclient, method,
                                                 side_effect=call))
        return active.clear

    @staticmethod
    def _response(status, detail):
        body = {'errors': [{'status': status, 'title': 'Error',
                            'code': 'placement.undefined_code',
                            'detail': detail}]}
        return mock.Mock(status_code=status, text=str(body),
                         json=mock.Mock(return_value=body))

    def test_api_placement_unreachable(self):
        self._fail(self.api_client, 'get', ks_exc.ConnectFailure('refused'))
        self._refused(503, {'current_vcpus': 3},
                      'placement could not be reached')

    def test_api_placement_failing(self):
        self._fail(self.api_client, 'put',
                   response=self._response(500, 'database gone'))
        self._refused(503, {'current_vcpus': 3},
                      'HTTP 500 to the allocation write: database gone')

    def test_api_no_room_gives_placements_reason(self):
        inventory = self.placement.get(
            '/resource_providers/%s/inventories' % self.rp_uuid).body
        vcpu = inventory['inventories']['VCPU']
        vcpu['max_unit'] = 3
        self.placement.put(
            '/resource_providers/%s/inventories/VCPU' % self.rp_uuid,
            dict(vcpu, resource_provider_generation=inventory[
                'resource_provider_generation']))
        self._refused(409, {'current_vcpus': 4},
                      'Placement cannot set VCPU=4',
                      'Unable to create allocation for', 'VCPU')
        self._adjust_ok(3, 1024)

    def _adjust_ok(self, vcpus, memory):
        body = self._post(self.server, {'current_vcpus': vcpus,
                                        'current_memory_mb': memory})
        self._wait_event(self.server, body['adjustment']['request_id'],
                         'Success')
        return self._assert_agree(self.server, (vcpus, memory))

    def _race_once(self, reportclient):
        """The next PUT of the allocation loses a real generation race."""
        real = reportclient.put
        raced = []

        def put(url, payload, *args, **kwargs):
            if url.startswith('/allocations/') and not raced:
                raced.append(url)
                # Another writer changes the consumer first.
                current = self.placement.get(url, version='1.28').body
                self.placement.put(url, {
                    'allocations': {rp: {'resources': a['resources']}
                                    for rp, a in
                                    current['allocations'].items()},
                    'consumer_generation': current['consumer_generation'],
                    'project_id': current['project_id'],
                    'user_id': current['user_id']}, version='1.28')
            return real(url, payload, *args, **kwargs)
        self.useFixture(fixtures.MockPatchObject(reportclient, 'put',
                                                 side_effect=put))
        return raced

    def test_api_generation_conflict_is_retried(self):
        raced = self._race_once(self.api_client)
        self._adjust_ok(4, 2048)
        self.assertEqual(1, len(raced))

    def test_compute_generation_conflict_is_retried(self):
        self._adjust_ok(4, 2048)
        raced = self._race_once(self.compute_client)
        # A decrease: only the compute writes the allocation.
        self._adjust_ok(2, 1024)
        self.assertEqual(1, len(raced))

    def _decrease_fails_on_the_compute(self, **fault):
        self._adjust_ok(4, 2048)
        self.placement_back = self._fail(self.compute_client, 'put',
                                         **fault)
        body = self._post(self.server, {'current_vcpus': 2,
                                        'current_memory_mb': 1024})
        request_id = body['adjustment']['request_id']
        _, event = self._wait_event(self.server, request_id, 'Error')
        shown = self._show(self.server)
        self.assertEqual((request_id, 'error'),
                         (shown['last_request_id'], shown['last_status']))
        # The guest changed and GET says so; the allocation could not
        # follow, and the server is marked for the drift repair.
        self.assertEqual((2, 1024), self._live(self.server))
        self.assertEqual((2, 1024), (shown['current_vcpus'],
                                     shown['current_memory_mb']))
        self.assertEqual((4, 2048), self._allocation(self.server))
        self.assertEqual([self.server['id']], store.uuids_with(
            self.ctxt, records.ALLOCATION_STALE))
        self.assertEqual(shown['last_message'], shown['allocation_stale'])
        fault = objects.InstanceFault.get_latest_for_instance(
            self.ctxt, self.server['id'])
        self.assertEqual(shown['last_message'], fault.message)
        self.assertIn(shown['last_message'], event['details'])
        return shown

    def test_compute_placement_unreachable_after_the_change(self):
        shown = self._decrease_fails_on_the_compute(
            error=ks_exc.ConnectFailure('refused'))
        self.assertIn('placement could not be reached',
                      shown['last_message'])
        self.assertNotIn('ConnectFailure', shown['last_message'])
        # What the drift repair does once placement is back.
        self.placement_back()
        instance = objects.Instance.get_by_uuid(
            self.ctxt, self.server['id'],
            expected_attrs=['flavor', 'system_metadata'])
        adjust.reconcile_allocation(self.ctxt, instance,
                                    client=self.compute_client)
        self.assertEqual((2, 1024), self._allocation(self.server))
        self.assertEqual([], store.uuids_with(self.ctxt,
                                              records.ALLOCATION_STALE))

    def test_placement_unreachable_at_a_reboot_is_left_to_the_repair(self):
        body = self._post(self.server, {'current_vcpus': 4,
                                        'current_memory_mb': 2048,
                                        'persist': False})
        self._wait_event(self.server, body['adjustment']['request_id'],
                         'Success')
        placement_back = self._fail(self.compute_client, 'put',
                                    error=ks_exc.ConnectFailure('refused'))
        self._reboot_server(self.server, hard=True)
        # The boot gave the guest its boot values back; the allocation
        # could not follow and is marked, saying why.
        self.assertEqual((2, 1024), self._live(self.server))
        self.assertEqual((4, 2048), self._allocation(self.server))
        stale = self._records(self.server)[records.ALLOCATION_STALE]
        self.assertEqual(stale, self._show(self.server)['allocation_stale'])
        self.assertIn('not set to the 2 vCPUs and 1024 MiB of the new boot',
                      stale)
        self.assertIn('placement could not be reached', stale)
        # The drift repair sets it once placement is back.
        placement_back()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.compute.drift._seen_drifted', {}))
        manager = self.computes[base.COMPUTE].manager
        task = dict(manager._periodic_tasks)[drift.TASK_NAME]
        for _run in range(2):
            task(manager, self.ctxt)
        self._assert_agree(self.server, (2, 1024))

    def test_compute_placement_refusing_the_lowering(self):
        shown = self._decrease_fails_on_the_compute(
            response=self._response(409, 'no way'))
        self.assertIn('no way', shown['last_message'])

    def test_compute_unreachable_before_the_change_changes_nothing(self):
        self._fail(self.compute_client, 'get',
                   ks_exc.ConnectFailure('refused'))
        body = self._post(self.server, {'current_vcpus': 3})
        _, event = self._wait_event(
            self.server, body['adjustment']['request_id'], 'Error')
        self.assertIn('placement could not be reached', event['details'])
        self.assertEqual((2, 1024), self._live(self.server))
        self.assertEqual('error', self._show(self.server)['last_status'])
        # The API raised the allocation for the increase; the compute
        # could not lower it back: marked for the repair.
        self.assertIn(records.ALLOCATION_STALE, self._records(self.server))
