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

"""The OSC commands run in process against the in-process API.

openstackclient's shell runs as the openstack command would, with an
admin_token auth (a token and the endpoint of the API fixture, which
wsgi-intercept serves); the SDK compute proxy sends the requests.
"""

import io
import re

import fixtures
from nova.api import auth as nova_auth
from nova import context as nova_context
from openstackclient import shell
from oslo_serialization import jsonutils

from nova_xloud.osc.v1 import adjust
from tests.functional import test_live_adjust
from tests import readme


class TokenContextFixture(fixtures.Fixture):
    """Make the request context from a 'user:project' token.

    The API fixture stubs keystonemiddleware out and builds the context
    from X-Auth-User/X-Auth-Project-Id/X-Roles headers, which its test
    client sends. OSC sends a token instead, which stands here for what
    keystonemiddleware would have validated: 'admin:<project>' is an
    admin of that project (as with Nova's noauth2 tokens).
    """

    def _setUp(self):
        original = nova_auth.NovaKeystoneContext._create_context

        def create_context(env, **kwargs):
            token = env.get('HTTP_X_AUTH_TOKEN')
            if 'HTTP_X_AUTH_USER' in env or not token:
                return original(env, **kwargs)
            user_id, _sep, project_id = token.partition(':')
            roles = ['reader', 'member']
            if user_id == 'admin':
                roles.append('admin')
            return nova_context.RequestContext(
                user_id, project_id or user_id, is_admin='admin' in roles,
                roles=roles, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.api.auth.NovaKeystoneContext._create_context',
            create_context))


class OSCTestCase(test_live_adjust.LiveAdjustTestBase):

    def setUp(self):
        super().setUp()
        self.useFixture(TokenContextFixture())
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.osc.v1.adjust.WAIT_INTERVAL', 0.1))
        for name in ('OS_CLOUD', 'OS_AUTH_URL', 'OS_AUTH_TYPE',
                     'OS_USERNAME', 'OS_PASSWORD', 'OS_PROJECT_NAME',
                     'OS_TOKEN', 'OS_ENDPOINT', 'OS_COMPUTE_API_VERSION'):
            self.useFixture(fixtures.EnvironmentVariable(name))

    def _openstack(self, *argv):
        """Run the openstack command; return (exit code, stdout, stderr)."""
        fixture = self.api_fixture
        endpoint = fixture.api.base_url
        stdout, stderr = io.StringIO(), io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', stdout))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr))
        try:
            code = shell.main([
                '--os-auth-type', 'admin_token',
                '--os-endpoint', endpoint,
                '--os-token', 'admin:%s' % fixture.project_id,
            ] + list(argv))
        except SystemExit as e:
            code = e.code
        return code, stdout.getvalue(), stderr.getvalue()

    def _json(self, *argv):
        code, out, err = self._openstack(*(argv + ('-f', 'json')))
        self.assertEqual(0, code, err)
        return jsonutils.loads(out)

    def test_set_wait_and_show(self):
        server = self._boot()
        shown = self._json('server', 'adjust', 'set', '--vcpus', '4',
                           '--memory', '3072', '--wait', server['id'])
        self.assertEqual((4, 3072, 'success'), (
            shown['current_vcpus'], shown['current_memory_mb'],
            shown['last_status']))
        self._assert_state(server, (4, 3072))
        self.assertEqual(shown, self._json('server', 'adjust', 'show',
                                           server['id']))

    def test_set_without_wait(self):
        server = self._boot()
        adjustment = self._json('server', 'adjust', 'set', '--vcpus', '3',
                                '--no-persist', server['id'])
        self.assertEqual({'server_id': server['id'], 'current_vcpus': 3,
                          'current_memory_mb': 1024, 'persist': False},
                         {k: v for k, v in adjustment.items()
                          if k != 'request_id'})
        self._wait_event(server, adjustment['request_id'], 'Success')
        self._assert_state(server, (3, 1024), persisted=False)

    def test_set_wait_error(self):
        server = self._boot()
        self.libvirt_ext.inject_error(
            'setVcpusFlags', message='internal error: unable to execute '
                                     'QEMU command device_add')
        code, out, err = self._openstack('server', 'adjust', 'set',
                                         '--vcpus', '4', '--wait',
                                         server['id'])
        self.assertEqual(1, code, err)
        self.assertEqual('', out)
        self.assertIn('Adjusting server %s: error' % server['id'], err)
        self.assertIn('failed: ', err)
        self.assertIn('unable to execute QEMU command device_add', err)
        self.assertNotIn('Traceback', err)
        self.assertEqual('error', self._show(server)['last_status'])

    def test_show_by_name(self):
        server = self._boot()
        self.assertNotEqual(server['id'], server['name'])
        shown = self._json('server', 'adjust', 'show', server['name'])
        self.assertEqual(adjust.flatten_shown(self._show(server)), shown)
        code, out, err = self._openstack('server', 'adjust', 'show',
                                         server['name'], '-f', 'value',
                                         '-c', 'maximum_vcpus')
        self.assertEqual((0, '4\n'), (code, out), err)

    def test_out_of_range(self):
        server = self._boot()
        code, out, err = self._openstack('server', 'adjust', 'set',
                                         '--vcpus', '8', server['name'])
        self.assertEqual(1, code)
        self.assertEqual('', out)
        self.assertIn('Invalid current_vcpus 8: it must be from 2 to 4 for '
                      'flavor', err)
        self.assertIn('(HTTP 400)', err)
        self.assertNotIn('Traceback', err)
        self.assertIsNone(self._show(server)['last_request_id'])

    def test_conflict_locked(self):
        server = self._boot()
        self.api.post_server_action(server['id'], {'lock': None})
        code, out, err = self._openstack('server', 'adjust', 'set',
                                         '--memory', '2048', server['id'])
        self.assertEqual(1, code)
        self.assertIn('Server %s is locked. (HTTP 409)' % server['id'], err)

    def test_unknown_server(self):
        code, out, err = self._openstack('server', 'adjust', 'show',
                                         'no-such-server')
        self.assertEqual(1, code)
        self.assertIn('no-such-server', err)
        self.assertNotIn('Traceback', err)

    def test_set_needs_a_value(self):
        server = self._boot()
        code, out, err = self._openstack('server', 'adjust', 'set',
                                         server['id'])
        self.assertEqual(2, code)
        self.assertIn('--vcpus', err)
        self.assertIn('--memory', err)
        self.assertIsNone(self._show(server)['last_request_id'])

    def _readme_server(self):
        """The flavor and server of README.rst's openstack examples."""
        flavor = {'name': 'm1.xl', 'id': 'm1.xl', 'vcpus': 4, 'ram': 4096,
                  'disk': 1}
        self.admin_api.post_flavor({'flavor': flavor})
        self.admin_api.post_extra_spec('m1.xl', {'extra_specs': {
            'minimum_cpu': '2', 'minimum_memory': '1024'}})
        return self._boot(flavor_id='m1.xl', name='web1')

    def _assert_readme_shows(self, command, printed):
        shown = readme.output_of('openstack ' + ' '.join(command))
        # What a terminal shows of a progress line redrawn after '\r'.
        on_screen = [line.rsplit('\r', 1)[-1]
                     for line in printed.rstrip('\n').split('\n')]
        self.assertEqual(_normalised(shown), _normalised(on_screen))

    def test_readme_outputs(self):
        server = self._readme_server()
        show = ('server', 'adjust', 'show', 'web1')
        code, out, err = self._openstack(*show)
        self.assertEqual(0, code, err)
        self._assert_readme_shows(show, out)

        up = ('server', 'adjust', 'set', '--vcpus', '4', '--memory', '3072',
              'web1')
        code, out, err = self._openstack(*up)
        self.assertEqual(0, code, err)
        self._assert_readme_shows(up, out)
        request_id = [line.split('|')[2].strip() for line in out.splitlines()
                      if 'request_id' in line][0]
        self._wait_event(server, request_id, 'Success')

        self.libvirt_ext.inject_error('setMemoryFlags',
                                      message='internal error: balloon')
        failing = ('server', 'adjust', 'set', '--memory', '2048', '--wait',
                   'web1')
        code, out, err = self._openstack(*failing)
        self.assertEqual((1, ''), (code, out))
        self._assert_readme_shows(failing, err)

        refused = ('server', 'adjust', 'set', '--vcpus', '8', 'web1')
        code, out, err = self._openstack(*refused)
        self.assertEqual((1, ''), (code, out))
        self._assert_readme_shows(refused, err)


def _normalised(lines):
    return [re.sub(r'\(\d+s\)', '(Ns)', line)
            for line in readme.normalised(lines)]
