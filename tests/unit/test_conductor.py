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

from importlib import metadata
from unittest import mock

from nova.conductor import manager as conductor_manager
from nova import context as nova_context
from nova.db.main import api as db
from nova import test
import oslo_messaging as messaging
from oslo_utils.fixture import uuidsentinel as uuids

from nova_xloud.conductor import endpoint
from nova_xloud.conductor import rpcapi


class ConductorEndpointTestCase(test.TestCase):

    def setUp(self):
        super().setUp()
        self.ctxt = nova_context.get_admin_context()
        db.instance_create(self.ctxt, {
            'uuid': uuids.instance,
            'system_metadata': {'xloud_adjust_seq': '1'}})
        self.endpoint = endpoint.create_endpoint(mock.sentinel.manager)

    def test_registered_on_the_conductor_entry_point(self):
        entry_points = [ep for ep in metadata.entry_points(
            group='nova.conductor.rpc_endpoints')
            if ep.name == 'xloud_records']
        self.assertEqual(1, len(entry_points))
        self.assertIs(endpoint.create_endpoint, entry_points[0].load())

    def test_conductor_manager_serves_it(self):
        conductor_manager._rpc_endpoint_plugins.cache_clear()
        self.addCleanup(conductor_manager._rpc_endpoint_plugins.cache_clear)
        manager = conductor_manager.ConductorManager()
        self.assertEqual(1, len([
            ep for ep in manager.additional_endpoints
            if isinstance(ep, endpoint.XloudConductorEndpoint)]))

    def test_own_namespace_and_version(self):
        self.assertEqual(('xloud_records', '1.0'),
                         (self.endpoint.target.namespace,
                          self.endpoint.target.version))

    def test_swaps_records_in_its_database(self):
        self.assertEqual((True, None), self.endpoint.swap_records(
            self.ctxt, uuids.instance, {'xloud_adjust_seq': '1'},
            {'xloud_adjust_seq': '2'}))
        self.assertEqual((False, {'xloud_adjust_seq': '2'}),
                         self.endpoint.swap_records(
                             self.ctxt, uuids.instance,
                             {'xloud_adjust_seq': '1'},
                             {'xloud_adjust_seq': '3'}))
        self.assertEqual('2', db.instance_system_metadata_get(
            self.ctxt, uuids.instance)['xloud_adjust_seq'])


class ConductorRPCAPITestCase(test.NoDBTestCase):

    def test_swap_records_calls_the_conductor_topic(self):
        with mock.patch('nova.rpc.get_client') as get_client:
            api = rpcapi.XloudConductorAPI()
        target = get_client.call_args[0][0]
        self.assertEqual(('conductor', 'xloud_records', '1.0'),
                         (target.topic, target.namespace, target.version))
        cctxt = get_client.return_value.prepare.return_value
        cctxt.call.return_value = [False, {'xloud_adjust_seq': '4'}]
        self.assertEqual((False, {'xloud_adjust_seq': '4'}),
                         api.swap_records(mock.sentinel.ctxt, uuids.instance,
                                          {}, {'xloud_adjust_seq': '1'}))
        get_client.return_value.prepare.assert_called_once_with(
            version='1.0')
        cctxt.call.assert_called_once_with(
            mock.sentinel.ctxt, 'swap_records', instance_uuid=uuids.instance,
            expected={}, changes={'xloud_adjust_seq': '1'})

    def test_endpoint_missing(self):
        for error in (messaging.RemoteError('UnsupportedVersion'),
                      messaging.RemoteError('NoSuchMethod'),
                      messaging.UnsupportedVersion('1.0'),
                      messaging.NoSuchMethod('swap_records')):
            self.assertTrue(rpcapi.endpoint_missing(error), error)
        for error in (messaging.RemoteError('DBError'),
                      messaging.MessagingTimeout(),
                      ValueError()):
            self.assertFalse(rpcapi.endpoint_missing(error), error)
