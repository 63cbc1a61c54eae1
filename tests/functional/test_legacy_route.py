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

"""/servers/{server_id}/os-xloud-adjust: the XLoud fork's path.

Clients written for the original fork call it; it must behave as
/os-xloud-adjust/{server_id}: same controller, schemas and policies.
"""

from nova.tests.functional.api import client

from nova_xloud.api import compat
from nova_xloud.api.schemas import adjust as schema
from nova_xloud.testing import base

LEGACY_URL = '/servers/%s/os-xloud-adjust'
UNKNOWN = '8b8f5d4c-11c4-4ebb-8f0b-6c4a07a4c1d2'


class LegacyRouteTestCase(base.LiveAdjustBase):

    def setUp(self):
        super().setUp()
        self.server = self._boot()

    def _legacy_show(self, api=None):
        body = (api or self.admin_api).api_get(
            LEGACY_URL % self.server['id']).body
        compat.validate_response(schema.show_response, body)
        return body

    def _legacy_refused(self, status, body, api=None):
        e = self.assertRaises(client.OpenStackApiException,
                              (api or self.admin_api).api_post,
                              LEGACY_URL % self.server['id'], body,
                              check_response_status=[202])
        self.assertEqual(status, e.response.status_code, e.response.text)
        return e.response.text

    def _adjust_actions(self):
        return [a for a in self.admin_api.get_instance_actions(
            self.server['id']) if a['action'] == 'xloud-adjust']

    def test_post_adjusts_and_get_shows_as_the_new_path(self):
        response = self.admin_api.api_post(
            LEGACY_URL % self.server['id'],
            {'current_vcpus': 3, 'current_memory_mb': 2048},
            check_response_status=[202]).body
        compat.validate_response(schema.adjust_response, response)
        adjustment = response['adjustment']
        self.assertEqual((3, 2048), (adjustment['current_vcpus'],
                                     adjustment['current_memory_mb']))
        self._wait_event(self.server, adjustment['request_id'], 'Success')
        self.assertEqual((3, 2048), self._live(self.server))
        self.assertEqual((3, 2048), self._allocation(self.server))
        shown = self._legacy_show()
        self.assertEqual(3, shown['adjustment']['current_vcpus'])
        self.assertEqual(2048, shown['adjustment']['current_memory_mb'])
        self.assertEqual(adjustment['request_id'],
                         shown['adjustment']['last_request_id'])
        self.assertEqual(self.admin_api.api_get(
            base.ADJUST_URL % self.server['id']).body, shown)

    def test_the_schemas_apply(self):
        self.assertIn('cpus', self._legacy_refused(
            400, {'current_vcpus': 2, 'cpus': 2}))
        text = self._legacy_refused(400, {'current_vcpus': 5})
        self.assertIn('current_vcpus 5', text)
        self.assertIn('from 2 to 4', text)
        e = self.assertRaises(client.OpenStackApiException,
                              self.admin_api.api_get,
                              LEGACY_URL % self.server['id'] + '?verbose=1')
        self.assertEqual(400, e.response.status_code)
        self.assertEqual([], self._adjust_actions())

    def test_the_policies_apply(self):
        text = self._legacy_refused(403, {'current_vcpus': 3}, api=self.api)
        self.assertIn('os-xloud-adjust:update', text)
        e = self.assertRaises(client.OpenStackApiException, self.api.api_get,
                              LEGACY_URL % self.server['id'])
        self.assertEqual(403, e.response.status_code)
        self.assertIn('os-xloud-adjust:show', e.response.text)
        self.assertEqual([], self._adjust_actions())

    def test_an_unknown_server_is_404(self):
        for call in (lambda: self.admin_api.api_get(LEGACY_URL % UNKNOWN),
                     lambda: self.admin_api.api_post(
                         LEGACY_URL % UNKNOWN, {'current_vcpus': 3},
                         check_response_status=[202])):
            e = self.assertRaises(client.OpenStackApiException, call)
            self.assertEqual(404, e.response.status_code)
