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

"""The OSC commands with a mocked SDK compute proxy."""

import argparse
import io
from unittest import mock

import fixtures
from openstack import exceptions as sdk_exceptions
from osc_lib import exceptions
import testtools

from nova_xloud.osc import plugin
from nova_xloud.osc.v1 import adjust

SERVER_ID = '9a2c4f3e-0d1b-4f5e-8a7c-6b5d4e3f2a1b'
REQUEST_ID = 'req-1b2c3d4e-5f60-4718-92a3-b4c5d6e7f809'

ADJUSTMENT = {'server_id': SERVER_ID, 'request_id': REQUEST_ID,
              'current_vcpus': 4, 'current_memory_mb': 2048,
              'persist': True}
SHOWN = {'server_id': SERVER_ID, 'minimum_vcpus': 2, 'current_vcpus': 4,
         'maximum_vcpus': 4, 'minimum_memory_mb': 1024,
         'current_memory_mb': 2048, 'maximum_memory_mb': 4096,
         'persisted': True, 'last_request_id': REQUEST_ID,
         'last_status': 'success', 'last_message': None,
         'requested_vcpus': 4, 'requested_memory_mb': 2048,
         'allocation_stale': None,
         'observed': {
             'vcpus': {'online': 3, 'source': 'guest-agent',
                       'observed_at': '2026-01-02T03:04:05Z',
                       'reason': None},
             'memory': {'actual_mb': 2048, 'available_mb': 2016,
                        'usable_mb': 1800, 'source': 'balloon-statistics',
                        'observed_at': '2026-01-02T03:04:06Z',
                        'reason': None}}}
# What show prints of SHOWN, in order.
SHOWN_ROWS = (
    ('server_id', SERVER_ID), ('minimum_vcpus', 2), ('current_vcpus', 4),
    ('maximum_vcpus', 4), ('minimum_memory_mb', 1024),
    ('current_memory_mb', 2048), ('maximum_memory_mb', 4096),
    ('persisted', True), ('requested_vcpus', 4),
    ('requested_memory_mb', 2048), ('observed_vcpus', 3),
    ('observed_vcpus_source', 'guest-agent'),
    ('observed_vcpus_at', '2026-01-02T03:04:05Z'),
    ('observed_vcpus_reason', None), ('observed_memory_actual_mb', 2048),
    ('observed_memory_available_mb', 2016),
    ('observed_memory_usable_mb', 1800),
    ('observed_memory_source', 'balloon-statistics'),
    ('observed_memory_at', '2026-01-02T03:04:06Z'),
    ('observed_memory_reason', None), ('last_request_id', REQUEST_ID),
    ('last_status', 'success'), ('last_message', None),
    ('allocation_stale', None))
DRY_RUN = {'server_id': SERVER_ID, 'applicable': False,
           'current_vcpus': {
               'requested': 4, 'current': 2, 'applicable': True,
               'reasons': [], 'notes': ['the guest must bring the new '
                                        'vCPUs online itself']},
           'current_memory_mb': {
               'requested': 1024, 'current': 2048, 'applicable': False,
               'reasons': ['Server x is locked.',
                           'current_memory_mb 1024 is not safe'],
               'notes': []}}


def _response(status, body=None, text=''):
    response = mock.Mock(status_code=status, text=text, reason='Reason')
    if body is None:
        response.json.side_effect = ValueError
    else:
        response.json.return_value = body
    return response


def _action(*events):
    return _response(200, {'instanceAction': {
        'action': 'xloud-adjust', 'request_id': REQUEST_ID,
        'events': list(events)}})


def _event(result=None, details=None):
    return {'event': adjust.EVENT, 'result': result, 'details': details}


class _CommandTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = mock.Mock()
        self.compute.find_server.return_value = mock.Mock(id=SERVER_ID)
        self.app = mock.Mock(stderr=io.StringIO())
        self.app.client_manager.xloud = self.compute
        self.sleep = self.useFixture(_patch('time.sleep'))

    def _run(self, command_class, argv):
        cmd = command_class(self.app, None)
        parser = cmd.get_parser('openstack server adjust')
        return cmd.take_action(parser.parse_args(argv))


def _patch(target, **kwargs):
    return fixtures.MockPatch('nova_xloud.osc.v1.adjust.' + target,
                              **kwargs)


class ParserTestCase(_CommandTestCase):

    def _parse(self, argv):
        cmd = adjust.SetAdjustment(self.app, None)
        return cmd.get_parser('openstack server adjust set').parse_args(argv)

    def test_defaults(self):
        args = self._parse(['srv'])
        self.assertEqual(('srv', None, None, True, False, 600, False,
                          False), (
            args.server, args.vcpus, args.memory, args.persist, args.wait,
            args.wait_timeout, args.force, args.dry_run))

    def test_all_options(self):
        args = self._parse(['--vcpus', '3', '--memory', '2048',
                            '--no-persist', '--wait', '--wait-timeout', '9',
                            '--force', '--dry-run', 'srv'])
        self.assertEqual(('srv', 3, 2048, False, True, 9, True, True), (
            args.server, args.vcpus, args.memory, args.persist, args.wait,
            args.wait_timeout, args.force, args.dry_run))

    def test_not_positive(self):
        for value in ('0', '-1', 'two', '1.5'):
            with mock.patch('sys.stderr', io.StringIO()) as stderr:
                self.assertRaises(SystemExit, self._parse,
                                  ['--vcpus', value, 'srv'])
            self.assertIn('%s is not a positive integer' % value,
                          stderr.getvalue())

    def test_server_required(self):
        with mock.patch('sys.stderr', io.StringIO()):
            self.assertRaises(SystemExit, self._parse, ['--vcpus', '2'])


class SetTestCase(_CommandTestCase):

    def test_neither_value_is_a_usage_error(self):
        with mock.patch('sys.stderr', io.StringIO()) as stderr:
            e = self.assertRaises(SystemExit, self._run,
                                  adjust.SetAdjustment, ['srv'])
        self.assertEqual(2, e.code)
        self.assertIn('at least one of --vcpus and --memory is required',
                      stderr.getvalue())
        self.assertIn('usage:', stderr.getvalue())
        self.compute.post.assert_not_called()

    def test_body_and_output(self):
        self.compute.post.return_value = _response(
            202, {'adjustment': ADJUSTMENT})
        columns, data = self._run(adjust.SetAdjustment,
                                  ['--vcpus', '4', '--memory', '2048',
                                   'my-server'])
        self.compute.find_server.assert_called_once_with(
            'my-server', ignore_missing=False)
        self.compute.post.assert_called_once_with(
            '/os-xloud-adjust/%s' % SERVER_ID,
            json={'current_vcpus': 4, 'current_memory_mb': 2048,
                  'persist': True})
        self.assertEqual(adjust.SET_COLUMNS, columns)
        self.assertEqual((SERVER_ID, REQUEST_ID, 4, 2048, True), data)
        self.compute.get.assert_not_called()

    def test_one_value_no_persist(self):
        self.compute.post.return_value = _response(
            202, {'adjustment': ADJUSTMENT})
        self._run(adjust.SetAdjustment, ['--memory', '1536', '--no-persist',
                                         'srv'])
        self.compute.post.assert_called_once_with(
            '/os-xloud-adjust/%s' % SERVER_ID,
            json={'current_memory_mb': 1536, 'persist': False})

    def test_api_error_message(self):
        self.compute.post.return_value = _response(400, {'badRequest': {
            'code': 400, 'message': 'Invalid current_vcpus 8: it must be '
                                    'from 2 to 4 for flavor 1.'}})
        e = self.assertRaises(exceptions.CommandError, self._run,
                              adjust.SetAdjustment, ['--vcpus', '8', 'srv'])
        self.assertEqual('Invalid current_vcpus 8: it must be from 2 to 4 '
                         'for flavor 1. (HTTP 400)', str(e))

    def test_api_error_without_json(self):
        self.compute.post.return_value = _response(403, text='Forbidden!')
        e = self.assertRaises(exceptions.CommandError, self._run,
                              adjust.SetAdjustment, ['--vcpus', '2', 'srv'])
        self.assertEqual('Forbidden! (HTTP 403)', str(e))

    def test_server_not_found(self):
        self.compute.find_server.side_effect = (
            sdk_exceptions.ResourceNotFound('No Server found for srv'))
        e = self.assertRaises(exceptions.CommandError, self._run,
                              adjust.SetAdjustment, ['--vcpus', '2', 'srv'])
        self.assertIn('No Server found for srv', str(e))
        self.compute.post.assert_not_called()

    def test_force(self):
        self.compute.post.return_value = _response(
            202, {'adjustment': ADJUSTMENT})
        columns, data = self._run(adjust.SetAdjustment,
                                  ['--memory', '1024', '--force', 'srv'])
        self.compute.post.assert_called_once_with(
            '/os-xloud-adjust/%s' % SERVER_ID,
            json={'current_memory_mb': 1024, 'persist': True,
                  'force': True})
        self.assertEqual(adjust.SET_COLUMNS, columns)

    def test_unsafe_shrink_message(self):
        self.compute.post.return_value = _response(409, {
            'conflictingRequest': {
                'code': 409,
                'message': 'current_memory_mb 1024 is not safe: the guest '
                           'uses 1500 MiB. Send "force": true to lower it '
                           'anyway.'}})
        e = self.assertRaises(exceptions.CommandError, self._run,
                              adjust.SetAdjustment, ['--memory', '1024',
                                                     'srv'])
        self.assertEqual('current_memory_mb 1024 is not safe: the guest uses '
                         '1500 MiB. Send "force": true to lower it anyway. '
                         '(HTTP 409)', str(e))

    def test_dry_run_prints_the_answer_per_value(self):
        self.compute.post.return_value = _response(200, {'dry_run': DRY_RUN})
        columns, data = self._run(adjust.SetAdjustment,
                                  ['--vcpus', '4', '--memory', '1024',
                                   '--dry-run', 'srv'])
        self.compute.post.assert_called_once_with(
            '/os-xloud-adjust/%s' % SERVER_ID,
            json={'current_vcpus': 4, 'current_memory_mb': 1024,
                  'persist': True, 'dry_run': True})
        self.assertEqual((
            ('server_id', SERVER_ID), ('applicable', False),
            ('vcpus_requested', 4), ('vcpus_current', 2),
            ('vcpus_applicable', True), ('vcpus_reasons', ''),
            ('vcpus_notes', 'the guest must bring the new vCPUs online '
                            'itself'),
            ('memory_mb_requested', 1024), ('memory_mb_current', 2048),
            ('memory_mb_applicable', False),
            ('memory_mb_reasons', 'Server x is locked.\n'
                                  'current_memory_mb 1024 is not safe'),
            ('memory_mb_notes', '')), tuple(zip(columns, data)))
        # Nothing is followed or shown after it.
        self.compute.get.assert_not_called()

    def test_dry_run_of_one_value_with_force(self):
        answer = dict(DRY_RUN, applicable=True)
        del answer['current_vcpus']
        self.compute.post.return_value = _response(200, {'dry_run': answer})
        columns, data = self._run(adjust.SetAdjustment,
                                  ['--memory', '1024', '--dry-run',
                                   '--force', '--no-persist', 'srv'])
        self.compute.post.assert_called_once_with(
            '/os-xloud-adjust/%s' % SERVER_ID,
            json={'current_memory_mb': 1024, 'persist': False,
                  'force': True, 'dry_run': True})
        self.assertEqual(('server_id', 'applicable', 'memory_mb_requested',
                          'memory_mb_current', 'memory_mb_applicable',
                          'memory_mb_reasons', 'memory_mb_notes'), columns)

    def test_dry_run_with_wait_is_a_usage_error(self):
        with mock.patch('sys.stderr', io.StringIO()) as stderr:
            e = self.assertRaises(SystemExit, self._run,
                                  adjust.SetAdjustment,
                                  ['--vcpus', '2', '--dry-run', '--wait',
                                   'srv'])
        self.assertEqual(2, e.code)
        self.assertIn('--wait cannot be used with --dry-run',
                      stderr.getvalue())
        self.compute.post.assert_not_called()

    def test_wait_success_shows_adjustment(self):
        self.compute.post.return_value = _response(
            202, {'adjustment': ADJUSTMENT})
        self.compute.get.side_effect = [
            _action(), _action(_event()), _action(_event('Success')),
            _response(200, {'adjustment': SHOWN})]
        columns, data = self._run(adjust.SetAdjustment,
                                  ['--vcpus', '4', '--wait', 'srv'])
        self.assertEqual(SHOWN_ROWS, tuple(zip(columns, data)))
        action_url = '/servers/%s/os-instance-actions/%s' % (
            SERVER_ID, REQUEST_ID)
        self.assertEqual(
            [mock.call(action_url, microversion='2.84')] * 3 +
            [mock.call('/os-xloud-adjust/%s' % SERVER_ID)],
            self.compute.get.call_args_list)
        self.assertEqual(2, self.sleep.mock.call_count)
        progress = self.app.stderr.getvalue()
        self.assertIn('Adjusting server %s: pending' % SERVER_ID, progress)
        self.assertIn('Adjusting server %s: success' % SERVER_ID, progress)
        self.assertTrue(progress.endswith('\n'))


class WaitTestCase(_CommandTestCase):

    def _wait(self, timeout=600):
        return adjust.wait_for_adjustment(
            self.compute, SERVER_ID, REQUEST_ID, timeout=timeout,
            interval=1, stream=self.app.stderr)

    def test_success(self):
        self.compute.get.side_effect = [_action(_event()),
                                        _action(_event('Success'))]
        self.assertEqual('Success', self._wait()['result'])
        self.sleep.mock.assert_called_once_with(1)

    def test_failure_with_details(self):
        self.compute.get.side_effect = [
            _action(_event('Error', 'libvirt: device_add failed'))]
        e = self.assertRaises(exceptions.CommandError, self._wait)
        self.assertEqual('Adjustment %s of server %s failed: libvirt: '
                         'device_add failed' % (REQUEST_ID, SERVER_ID),
                         str(e))
        self.assertIn(': error', self.app.stderr.getvalue())

    def test_failure_message_from_record(self):
        self.compute.get.side_effect = [
            _action(_event('Error')),
            _response(200, {'adjustment': dict(
                SHOWN, last_status='error', last_message='balloon')})]
        e = self.assertRaises(exceptions.CommandError, self._wait)
        self.assertIn('failed: balloon', str(e))

    def test_failure_without_message(self):
        self.compute.get.side_effect = [
            _action(_event('Error')),
            _response(200, {'adjustment': dict(
                SHOWN, last_request_id=None, last_message=None)})]
        e = self.assertRaises(exceptions.CommandError, self._wait)
        self.assertIn('failed: no details available', str(e))

    def test_timeout(self):
        self.compute.get.return_value = _action(_event())
        clock = self.useFixture(_patch('time.monotonic'))
        clock.mock.side_effect = [100, 101, 105, 111]
        e = self.assertRaises(exceptions.CommandError, self._wait, 10)
        self.assertEqual('Adjustment %s of server %s did not end within 10 '
                         'seconds.' % (REQUEST_ID, SERVER_ID), str(e))
        self.assertEqual(2, self.sleep.mock.call_count)
        self.assertIn('pending (11s)', self.app.stderr.getvalue())

    def test_action_error(self):
        self.compute.get.return_value = _response(404, {'itemNotFound': {
            'code': 404, 'message': 'Action req-x not found'}})
        e = self.assertRaises(exceptions.CommandError, self._wait)
        self.assertEqual('Action req-x not found (HTTP 404)', str(e))


class ShowTestCase(_CommandTestCase):

    def test_show(self):
        self.compute.get.return_value = _response(
            200, {'adjustment': SHOWN})
        columns, data = self._run(adjust.ShowAdjustment, ['srv'])
        self.compute.find_server.assert_called_once_with(
            'srv', ignore_missing=False)
        self.compute.get.assert_called_once_with(
            '/os-xloud-adjust/%s' % SERVER_ID)
        self.assertEqual(adjust.SHOW_COLUMNS, columns)
        self.assertEqual(SHOWN_ROWS, tuple(zip(columns, data)))

    def test_show_not_observed(self):
        shown = dict(SHOWN, requested_vcpus=None, requested_memory_mb=None,
                     observed={
                         'vcpus': {'online': None, 'source': None,
                                   'observed_at': None,
                                   'reason': 'no agent'},
                         'memory': {'actual_mb': None, 'available_mb': None,
                                    'usable_mb': None, 'source': None,
                                    'observed_at': None,
                                    'reason': 'no balloon'}})
        self.compute.get.return_value = _response(200, {'adjustment': shown})
        columns, data = self._run(adjust.ShowAdjustment, ['srv'])
        rows = dict(zip(columns, data))
        self.assertEqual((None, None, None, 'no agent', None, 'no balloon'), (
            rows['requested_vcpus'], rows['observed_vcpus'],
            rows['observed_vcpus_source'], rows['observed_vcpus_reason'],
            rows['observed_memory_actual_mb'],
            rows['observed_memory_reason']))

    def test_show_of_an_older_server(self):
        # nova-xloud before the observed values: those columns are empty.
        shown = {k: v for k, v in SHOWN.items()
                 if k not in ('observed', 'requested_vcpus',
                              'requested_memory_mb')}
        self.compute.get.return_value = _response(200, {'adjustment': shown})
        columns, data = self._run(adjust.ShowAdjustment, ['srv'])
        rows = dict(zip(columns, data))
        self.assertEqual(4, rows['current_vcpus'])
        for column, _path in adjust.OBSERVED_COLUMNS:
            self.assertIsNone(rows[column], column)
        self.assertEqual('', rows['requested_vcpus'])

    def test_flatten_keeps_the_rest(self):
        flat = adjust.flatten_shown(SHOWN)
        self.assertNotIn('observed', flat)
        self.assertIn('observed', SHOWN)
        self.assertEqual(len(adjust.SHOW_COLUMNS), len(set(
            adjust.SHOW_COLUMNS)))
        self.assertEqual(set(adjust.SHOW_COLUMNS), set(flat))


class PluginTestCase(testtools.TestCase):

    def test_make_client(self):
        instance = mock.Mock()
        self.assertIs(instance.sdk_connection.compute,
                      plugin.make_client(instance))

    def test_option(self):
        parser = plugin.build_option_parser(argparse.ArgumentParser())
        self.assertEqual('1', parser.parse_args([]).os_xloud_api_version)
        self.assertEqual('1', plugin.DEFAULT_API_VERSION)
        self.assertIn(plugin.DEFAULT_API_VERSION, plugin.API_VERSIONS)
        self.assertEqual('xloud', plugin.API_NAME)
