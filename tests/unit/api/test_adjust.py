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

import itertools
import os
from unittest import mock

import ddt
import fixtures
from nova.api.openstack.compute import routes as nova_routes
from nova.api.openstack import wsgi as os_wsgi
from nova.compute import vm_states
from nova import exception
from nova import objects
from nova import test
from nova.tests.unit.api.openstack import fakes
from nova.tests.unit import fake_instance
import oslo_messaging as messaging
from oslo_serialization import jsonutils
import webob

from nova_xloud.api import adjust
from nova_xloud.api import compat
from nova_xloud.api import routes
from nova_xloud.api.schemas import adjust as schema
from nova_xloud.compute import adjust as compute_adjust
from nova_xloud.compute import placement
from nova_xloud import records
from nova_xloud.testing import fake_store

UUID = '8b8f5d4c-11c4-4ebb-8f0b-6c4a07a4c1d2'
REQUEST_ID = 'req-a4b6ac2c-6a49-4a40-8fb4-4b8e2b7b0b0e'


def make_flavor(vcpus=4, memory_mb=4096, **extra_specs):
    return objects.Flavor(name='xl', flavorid='xl-id', vcpus=vcpus,
                          memory_mb=memory_mb, root_gb=1, ephemeral_gb=0,
                          swap=0, extra_specs=extra_specs)


@ddt.ddt
class RequestSchemaTestCase(test.NoDBTestCase):

    def _validate(self, body):
        compat.validate_response(schema.adjust, body)

    @ddt.data({'current_vcpus': 2}, {'current_memory_mb': 1024},
              {'current_vcpus': '2', 'current_memory_mb': '1024'},
              {'current_vcpus': 2, 'persist': False},
              {'current_memory_mb': 1024, 'force': True, 'dry_run': False})
    def test_valid(self, body):
        self._validate(body)

    @ddt.data(({'current_vcpus': True}, 'current_vcpus'),
              ({'current_vcpus': 2.5}, 'current_vcpus'),
              ({'current_memory_mb': 1.5}, 'current_memory_mb'),
              ({'current_vcpus': 0}, 'current_vcpus'),
              ({'current_vcpus': -2}, 'current_vcpus'),
              ({'current_vcpus': '0'}, 'current_vcpus'),
              ({'current_vcpus': '-2'}, 'current_vcpus'),
              ({'current_vcpus': ' 2'}, 'current_vcpus'),
              ({'current_vcpus': '2\n'}, 'current_vcpus'),
              ({'current_vcpus': '\uff12'}, 'current_vcpus'),
              ({'current_vcpus': '99999999999'}, 'current_vcpus'),
              ({'current_vcpus': 2 ** 31}, 'current_vcpus'),
              ({'current_vcpus': None}, 'current_vcpus'),
              ({'current_vcpus': 2, 'persist': 'true'}, 'persist'),
              ({'current_vcpus': 2, 'force': 'true'}, 'force'),
              ({'current_vcpus': 2, 'force': 1}, 'force'),
              ({'current_vcpus': 2, 'dry_run': None}, 'dry_run'),
              ({'current_vcpus': 2, 'dry_run': 'yes'}, 'dry_run'),
              ({'current_vcpus': 2, 'vcpus': 2}, 'vcpus'),
              (None, 'object'), ([], 'object'), ('2', 'object'))
    @ddt.unpack
    def test_invalid(self, body, field):
        e = self.assertRaises(exception.ValidationError, self._validate,
                              body)
        self.assertIn(field, str(e))

    def test_every_object_is_closed(self):
        def walk(node):
            if isinstance(node, dict):
                if node.get('type') == 'object':
                    self.assertIs(False, node['additionalProperties'])
                for value in node.values():
                    walk(value)
        for value in (schema.adjust, schema.adjust_response,
                      schema.show_query, schema.show_response):
            walk(value)


class ApiRefSamplesTestCase(test.NoDBTestCase):

    def _sample(self, name):
        path = os.path.join(os.path.dirname(__file__), '..', '..', '..',
                            'api-ref', 'source', 'samples', name)
        with open(path) as f:
            return jsonutils.loads(f.read())

    def test_samples_match_schemas(self):
        compat.validate_response(schema.adjust,
                                 self._sample('adjust-req.json'))
        compat.validate_response(schema.adjust_response,
                                 self._sample('adjust-resp.json'))
        compat.validate_response(schema.show_response,
                                 self._sample('show-resp.json'))

    def test_dry_run_samples_match_schemas(self):
        request = self._sample('adjust-dry-run-req.json')
        self.assertIs(True, request['dry_run'])
        compat.validate_response(schema.adjust, request)
        response = self._sample('adjust-dry-run-resp.json')
        compat.validate_response(schema.adjust_response, response)
        # A dry-run answer, not an accepted adjustment.
        self.assertEqual(['dry_run'], list(response))

    def test_force_sample_matches_schema(self):
        request = self._sample('adjust-force-req.json')
        self.assertIs(True, request['force'])
        compat.validate_response(schema.adjust, request)

    def test_every_sample_is_checked(self):
        path = os.path.join(os.path.dirname(__file__), '..', '..', '..',
                            'api-ref', 'source', 'samples')
        self.assertEqual(
            ['adjust-dry-run-req.json', 'adjust-dry-run-resp.json',
             'adjust-force-req.json', 'adjust-req.json', 'adjust-resp.json',
             'show-resp.json'], sorted(os.listdir(path)))

    def test_response_schema_is_one_of_the_two(self):
        accepted = self._sample('adjust-resp.json')
        dry_run = self._sample('adjust-dry-run-resp.json')
        self.assertRaises(exception.ValidationError,
                          compat.validate_response, schema.adjust_response,
                          dict(accepted, **dry_run))
        self.assertRaises(exception.ValidationError,
                          compat.validate_response, schema.adjust_response,
                          {'dry_run': {'applicable': True}})


class ControllerTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.controller = adjust.AdjustController()
        self.req = fakes.HTTPRequest.blank('', use_admin_context=True)
        self.ctxt = self.req.environ['nova.context']
        self.instance = fake_instance.fake_instance_obj(
            self.ctxt, uuid=UUID, host='compute1', node='node1',
            vm_state=vm_states.ACTIVE, task_state=None, locked=False,
            flavor=make_flavor(minimum_cpu='2', minimum_memory='1024'),
            project_id=self.ctxt.project_id)
        self.instance.system_metadata = {}
        self.instance.save = mock.Mock()
        self.instance.refresh = mock.Mock()
        self.store = self.useFixture(fake_store.FakeStore())
        self.get = self.useFixture(fixtures.MockPatch(
            'nova.api.openstack.common.get_instance',
            return_value=self.instance)).mock
        self.service_get = self.useFixture(fixtures.MockPatch(
            'nova.objects.Service.get_by_compute_host')).mock
        self.is_up = self.useFixture(fixtures.MockPatch(
            'nova.servicegroup.API.service_is_up', return_value=True)).mock
        self.rpc = mock.Mock()
        self.rpc.describe_host.return_value = {
            'version': '1.1', 'live_vcpus': True, 'memory_balloon': True}
        # The cache is rpcapi's own, tested there.
        self.rpc.describe_host_cached.side_effect = self.rpc.describe_host
        # A guest using 148 MiB of 2048 (the balloon statistics).
        self.rpc.guest_memory.return_value = {
            'actual_mb': 2048, 'available_mb': 2016, 'usable_mb': 1900,
            'source': 'balloon-statistics',
            'observed_at': '2026-01-02T03:04:05Z', 'reason': None}
        self.controller.rpcapi = self.rpc
        # A host with room for more of both.
        room = {'VCPU': placement.Room(capacity=16, used=8, held=2,
                                       max_unit=16),
                'MEMORY_MB': placement.Room(capacity=8192, used=4096,
                                            held=1024, max_unit=8192)}
        self.room = self.useFixture(fixtures.MockPatch(
            'nova_xloud.compute.placement.room', return_value=room)).mock
        self.set_amounts = self.useFixture(fixtures.MockPatch(
            'nova_xloud.compute.placement.set_amounts')).mock
        self.action_start = self.useFixture(fixtures.MockPatch(
            'nova.objects.InstanceAction.action_start')).mock

    def _adjust(self, body):
        return self.controller.adjust(self.req, UUID, body=body)

    def _assert_nothing_done(self):
        self.rpc.adjust.assert_not_called()
        self.action_start.assert_not_called()
        self.instance.save.assert_not_called()
        self.assertEqual([], self.store.writes)

    def test_adjust(self):
        result = self._adjust({'current_vcpus': '3'})
        compat.validate_response(schema.adjust_response, result)
        self.assertEqual({'adjustment': {
            'server_id': UUID, 'request_id': self.ctxt.request_id,
            'current_vcpus': 3, 'current_memory_mb': 1024,
            'persist': True}}, result)
        self.set_amounts.assert_called_once_with(
            self.ctxt, self.instance, only_increase=True, vcpus=3)
        self.action_start.assert_called_once_with(
            self.ctxt, UUID, 'xloud-adjust', want_result=False)
        self.rpc.describe_host.assert_called_once_with(self.ctxt,
                                                       'compute1')
        self.rpc.adjust.assert_called_once_with(self.ctxt, self.instance, 3,
                                                None, True, 1, force=False)
        self.assertEqual([(UUID, {
            'xloud_adjust_seq': '1', 'xloud_last_status': 'pending',
            'xloud_last_request_id': self.ctxt.request_id,
            'xloud_requested_vcpus': '3'})],
            self.store.writes)
        # Not a decrease of memory: the guest is not asked.
        self.rpc.guest_memory.assert_not_called()
        self.room.assert_not_called()
        self.instance.save.assert_not_called()
        self.instance.refresh.assert_not_called()

    def test_a_decrease_does_not_ask_placement(self):
        # The compute lowers the allocation once the guest gave back.
        self.instance.system_metadata.update({
            'xloud_live_vcpus': '3', 'xloud_live_memory_mb': '2048',
            'xloud_live_flavorid': self.instance.flavor.flavorid})
        for body in ({'current_vcpus': 2}, {'current_memory_mb': 1024},
                     {'current_vcpus': 3, 'current_memory_mb': 2048}):
            self._adjust(body)
        self.set_amounts.assert_not_called()
        self.assertEqual(3, self.rpc.adjust.call_count)
        # Up in one field and down in the other: raised for the first.
        self._adjust({'current_vcpus': 4, 'current_memory_mb': 1024})
        self.set_amounts.assert_called_once_with(
            self.ctxt, self.instance, only_increase=True, vcpus=4,
            memory_mb=1024)

    def test_sequence_follows_the_stored_one(self):
        self.instance.system_metadata = {'xloud_adjust_seq': '41'}
        self._adjust({'current_vcpus': 3})
        self.rpc.adjust.assert_called_once_with(self.ctxt, self.instance, 3,
                                                None, True, 42, force=False)

    def test_needs_a_value(self):
        e = self.assertRaises(webob.exc.HTTPBadRequest, self._adjust,
                              {'persist': True})
        self.assertIn('current_vcpus', e.explanation)
        self._assert_nothing_done()

    def test_whole_float_is_refused(self):
        # The schema refuses it where the validator counts 2048.0 as a
        # float (2024.1); the controller where it counts as an integer.
        e = self.assertRaises(
            (exception.ValidationError, webob.exc.HTTPBadRequest),
            self._adjust, {'current_memory_mb': 2048.0})
        message = getattr(e, 'explanation', None) or str(e)
        self.assertIn('current_memory_mb', message)
        self.assertIn('2048.0', message)
        self._assert_nothing_done()

    def test_out_of_range(self):
        for body, text in (
                ({'current_vcpus': 5}, 'current_vcpus 5: it must be from '
                                       '2 to 4'),
                ({'current_vcpus': 1}, 'from 2 to 4'),
                ({'current_memory_mb': 4097}, 'current_memory_mb 4097: it '
                                              'must be from 1024 to 4096'),
                ({'current_memory_mb': 1023}, 'from 1024 to 4096')):
            e = self.assertRaises(webob.exc.HTTPBadRequest, self._adjust,
                                  body)
            self.assertIn(text, e.explanation)
        self._assert_nothing_done()

    def test_forbidden(self):
        req = fakes.HTTPRequest.blank('', roles=['member', 'reader'])
        self.assertRaises(exception.PolicyNotAuthorized,
                          self.controller.adjust, req, UUID,
                          body={'current_vcpus': 3})
        self.assertRaises(exception.PolicyNotAuthorized,
                          self.controller.show, req, UUID)
        self._assert_nothing_done()

    def test_not_found(self):
        self.get.side_effect = webob.exc.HTTPNotFound()
        self.assertRaises(webob.exc.HTTPNotFound, self._adjust,
                          {'current_vcpus': 3})

    def _conflict(self, body, text):
        e = self.assertRaises(webob.exc.HTTPConflict, self._adjust, body)
        self.assertIn(text, e.explanation)
        self._assert_nothing_done()

    def test_locked(self):
        self.instance.locked = True
        self._conflict({'current_vcpus': 3}, 'locked')

    def test_task_state(self):
        self.instance.task_state = 'rebooting'
        self._conflict({'current_vcpus': 3}, 'task in progress: rebooting')

    def test_bad_states(self):
        for state in (vm_states.PAUSED, vm_states.ERROR, vm_states.SHELVED,
                      vm_states.RESIZED, vm_states.SUSPENDED):
            self.instance.vm_state = state
            self._conflict({'current_vcpus': 3}, 'must be ACTIVE or SHUTOFF')

    def test_stopped(self):
        self.instance.vm_state = vm_states.STOPPED
        self._conflict({'current_vcpus': 3, 'persist': False},
                       'persist: true')
        self._adjust({'current_vcpus': 3})
        self.rpc.adjust.assert_called_once()

    def test_service_down(self):
        self.is_up.return_value = False
        self._conflict({'current_vcpus': 3}, 'compute1 is down')
        self.service_get.side_effect = exception.ComputeHostNotFound(
            host='compute1')
        self._conflict({'current_vcpus': 3}, 'No compute service')

    def test_unpatched_compute(self):
        for error in (messaging.UnsupportedVersion('1.0'),
                      messaging.RemoteError('UnsupportedVersion')):
            self.rpc.describe_host.side_effect = error
            self._conflict({'current_vcpus': 3}, 'does not run nova-xloud')
        self.rpc.describe_host.side_effect = messaging.MessagingTimeout()
        self._conflict({'current_vcpus': 3}, 'did not answer in time')

    def test_no_balloon(self):
        self.rpc.describe_host.return_value['memory_balloon'] = False
        self._conflict({'current_memory_mb': 2048}, 'memory balloon')
        self._adjust({'current_vcpus': 3})

    def test_placement_refused(self):
        self.set_amounts.side_effect = placement.PlacementRefused(
            amounts='VCPU=4', uuid=UUID, host='compute1', reason='full')
        self._conflict({'current_vcpus': 4}, 'VCPU=4')
        self.set_amounts.side_effect = placement.PlacementBusy(
            amounts='VCPU=4', uuid=UUID, host='compute1',
            reason='the allocation kept changing')
        self._conflict({'current_vcpus': 4}, 'kept changing')

    def test_placement_unavailable(self):
        self.set_amounts.side_effect = placement.PlacementUnavailable(
            amounts='VCPU=4', uuid=UUID, host='compute1',
            reason='placement could not be reached')
        e = self.assertRaises(webob.exc.HTTPServiceUnavailable, self._adjust,
                              {'current_vcpus': 4})
        self.assertIn('placement could not be reached', e.explanation)
        self._assert_nothing_done()

    def test_cast_failure_is_recorded(self):
        self.rpc.adjust.side_effect = messaging.MessagingException('gone')
        e = self.assertRaises(webob.exc.HTTPServiceUnavailable, self._adjust,
                              {'current_vcpus': 4})
        self.assertIn('could not be reached', e.explanation)
        self.assertEqual(('error', e.explanation), (
            self.instance.system_metadata['xloud_last_status'],
            self.instance.system_metadata['xloud_last_message']))
        # Raised for the increase, then set back to what the guest has.
        self.assertEqual([
            mock.call(self.ctxt, self.instance, only_increase=True, vcpus=4),
            mock.call(self.ctxt, self.instance, vcpus=2, memory_mb=1024)],
            self.set_amounts.call_args_list)

    def test_amounts_checked_whatever_the_validator(self):
        # What a lenient validator could let through still gets a 400.
        for value in ('2\n', ' 2', '+2', '02', '\uff12', '2.0', True, 2.0,
                      0, -1, None, [2], {'n': 2}):
            e = self.assertRaises(webob.exc.HTTPBadRequest, adjust._wanted,
                                  {'current_vcpus': value})
            self.assertIn('current_vcpus', e.explanation)
        for field in ('persist', 'force', 'dry_run'):
            for value in ('true', 1, None, 0):
                e = self.assertRaises(webob.exc.HTTPBadRequest, adjust._flag,
                                      {field: value}, field, False)
                self.assertIn('field/attribute %s. Value: %r' % (
                    field, value), e.explanation)
                self.assertIn('It must be true or false.', e.explanation)
        self.assertIs(True, adjust._flag({}, 'persist', True))
        self.assertIs(False, adjust._flag({}, 'force', False))
        self.assertIs(True, adjust._flag({'force': True}, 'force', False))

    def test_flags_must_be_booleans(self):
        # The schema refuses them where it runs; the controller anyway.
        for field in ('persist', 'force', 'dry_run'):
            for value in ('true', 1, None):
                e = self.assertRaises(
                    (exception.ValidationError, webob.exc.HTTPBadRequest),
                    self._adjust, {'current_vcpus': 3, field: value})
                message = getattr(e, 'explanation', None) or str(e)
                self.assertIn(field, message)
        self._assert_nothing_done()
        self.room.assert_not_called()

    def _live(self, vcpus=2, memory_mb=2048):
        self.instance.system_metadata.update({
            'xloud_live_vcpus': str(vcpus),
            'xloud_live_memory_mb': str(memory_mb),
            'xloud_live_flavorid': self.instance.flavor.flavorid})

    def _guest_uses(self, actual_mb, usable_mb):
        self.rpc.guest_memory.return_value = dict(
            self.rpc.guest_memory.return_value, actual_mb=actual_mb,
            available_mb=actual_mb - 32, usable_mb=usable_mb)

    def test_safe_shrink_asks_the_guest(self):
        self._live(memory_mb=2048)
        self._adjust({'current_memory_mb': 1024})
        self.rpc.guest_memory.assert_called_once_with(self.ctxt,
                                                      self.instance)
        self.rpc.adjust.assert_called_once_with(
            self.ctxt, self.instance, None, 1024, True, 1, force=False)
        self.assertEqual('1024', self.instance.system_metadata[
            'xloud_requested_memory_mb'])

    def test_unsafe_shrink_is_refused_naming_the_numbers(self):
        self._live(memory_mb=2048)
        self._guest_uses(2048, 548)
        e = self.assertRaises(webob.exc.HTTPConflict, self._adjust,
                              {'current_memory_mb': 1024})
        self.assertEqual(
            'current_memory_mb 1024 is not safe: the guest uses 1500 MiB of '
            'its 2048 MiB (548 MiB usable); 1024 MiB leaves less than the '
            '128 MiB margin: the smallest safe target is 1628 MiB. Send '
            '"force": true to lower it anyway.', e.explanation)
        self._assert_nothing_done()
        self.set_amounts.assert_not_called()

    def test_shrink_margin_option(self):
        self._live(memory_mb=2048)
        self._guest_uses(2048, 1100)
        self.flags(memory_shrink_margin_mb=100, group='xloud')
        e = self.assertRaises(webob.exc.HTTPConflict, self._adjust,
                              {'current_memory_mb': 1024})
        self.assertIn('less than the 100 MiB margin: the smallest safe '
                      'target is 1048 MiB', e.explanation)
        self.flags(memory_shrink_margin_mb=76, group='xloud')
        self._adjust({'current_memory_mb': 1024})
        self.rpc.adjust.assert_called_once()

    def test_unsafe_shrink_with_force(self):
        self._live(memory_mb=2048)
        self._guest_uses(2048, 548)
        result = self._adjust({'current_memory_mb': 1024, 'force': True})
        compat.validate_response(schema.adjust_response, result)
        self.assertEqual(1024, result['adjustment']['current_memory_mb'])
        self.rpc.guest_memory.assert_not_called()
        self.rpc.adjust.assert_called_once_with(
            self.ctxt, self.instance, None, 1024, True, 1, force=True)

    def test_shrink_without_statistics_is_refused(self):
        self._live(memory_mb=2048)
        self.rpc.guest_memory.return_value = {
            'actual_mb': 2048, 'available_mb': None, 'usable_mb': None,
            'source': 'balloon-statistics', 'observed_at': 'T',
            'reason': 'the guest reports no usable memory'}
        e = self.assertRaises(webob.exc.HTTPConflict, self._adjust,
                              {'current_memory_mb': 1024})
        self.assertIn('the guest reports no memory use (balloon '
                      'statistics): the guest reports no usable memory',
                      e.explanation)
        self.assertIn('"force": true', e.explanation)
        self._assert_nothing_done()

    def test_shrink_asked_of_an_older_compute(self):
        self._live(memory_mb=2048)
        for error in (messaging.UnsupportedVersion('1.1'),
                      messaging.RemoteError('UnsupportedVersion')):
            self.rpc.guest_memory.side_effect = error
            e = self.assertRaises(webob.exc.HTTPConflict, self._adjust,
                                  {'current_memory_mb': 1024})
            self.assertIn('cannot say how much memory the guest uses (it '
                          'runs an older nova-xloud). Send "force": true',
                          e.explanation)
        self.rpc.guest_memory.side_effect = messaging.MessagingTimeout()
        e = self.assertRaises(webob.exc.HTTPConflict, self._adjust,
                              {'current_memory_mb': 1024})
        self.assertIn('did not say in time how much memory', e.explanation)
        self._assert_nothing_done()
        # force needs no answer from it.
        self._adjust({'current_memory_mb': 1024, 'force': True})
        self.rpc.adjust.assert_called_once()

    def test_force_to_a_compute_of_nova_xloud_1_0(self):
        # A 1.0 compute never checks a shrink, which is what force asks,
        # and would refuse the 1.1 message that carries force: the cast is
        # a plain 1.0 one. Unforced, the shrink is refused at once.
        self._live(memory_mb=2048)
        self.rpc.describe_host.return_value['version'] = '1.0'
        e = self.assertRaises(webob.exc.HTTPConflict, self._adjust,
                              {'current_memory_mb': 1024})
        self.assertIn('older nova-xloud', e.explanation)
        self.rpc.guest_memory.assert_not_called()
        self._assert_nothing_done()
        self._adjust({'current_memory_mb': 1024, 'force': True})
        self.rpc.adjust.assert_called_once_with(
            self.ctxt, self.instance, None, 1024, True, 1, force=False)

    def test_no_question_without_a_shrink(self):
        self._live(memory_mb=2048)
        for body in ({'current_memory_mb': 2048},
                     {'current_memory_mb': 3072}, {'current_vcpus': 3}):
            self._adjust(body)
        # Nor for a stopped server: nothing runs to give memory back.
        self.instance.vm_state = vm_states.STOPPED
        self._adjust({'current_memory_mb': 1024})
        self.rpc.guest_memory.assert_not_called()
        self.assertEqual(4, self.rpc.adjust.call_count)

    # dry run

    def _dry_run(self, body):
        result = self._adjust(dict(body, dry_run=True))
        self.assertIsInstance(result, os_wsgi.ResponseObject)
        self.assertEqual(200, result.code)
        compat.validate_response(schema.adjust_response, result.obj)
        self.assertEqual(['dry_run'], list(result.obj))
        # Nothing written, nothing sent, nothing started.
        self._assert_nothing_done()
        self.set_amounts.assert_not_called()
        self.instance.refresh.assert_not_called()
        return result.obj['dry_run']

    def test_dry_run_applicable(self):
        self._live(vcpus=2, memory_mb=2048)
        answer = self._dry_run({'current_vcpus': 4,
                                'current_memory_mb': 1024})
        self.assertEqual({
            'server_id': UUID, 'applicable': True,
            'current_vcpus': {
                'requested': 4, 'current': 2, 'applicable': True,
                'reasons': [],
                'notes': [compute_adjust.ONLINE_THEMSELVES]},
            'current_memory_mb': {
                'requested': 1024, 'current': 2048, 'applicable': True,
                'reasons': [], 'notes': []}}, answer)
        # Read-only questions only.
        self.rpc.guest_memory.assert_called_once_with(self.ctxt,
                                                      self.instance)
        self.room.assert_called_once_with(self.instance._context,
                                          self.instance)

    def test_dry_run_one_value(self):
        answer = self._dry_run({'current_memory_mb': 2048})
        self.assertNotIn('current_vcpus', answer)
        self.assertTrue(answer['applicable'])
        self.assertEqual((2048, 1024), (
            answer['current_memory_mb']['requested'],
            answer['current_memory_mb']['current']))

    def test_dry_run_with_agent_has_no_note(self):
        self.instance.system_metadata['image_hw_qemu_guest_agent'] = 'yes'
        answer = self._dry_run({'current_vcpus': 3})
        self.assertEqual([], answer['current_vcpus']['notes'])
        # Nor for a decrease or a stopped server without agent.
        del self.instance.system_metadata['image_hw_qemu_guest_agent']
        self._live(vcpus=3)
        answer = self._dry_run({'current_vcpus': 2})
        self.assertEqual([], answer['current_vcpus']['notes'])
        self.instance.vm_state = vm_states.STOPPED
        answer = self._dry_run({'current_vcpus': 4})
        self.assertEqual([], answer['current_vcpus']['notes'])

    def test_dry_run_gives_every_reason(self):
        self.instance.locked = True
        self.instance.task_state = 'rebooting'
        answer = self._dry_run({'current_vcpus': 5,
                                'current_memory_mb': 2048})
        self.assertFalse(answer['applicable'])
        vcpus = answer['current_vcpus']
        self.assertFalse(vcpus['applicable'])
        reasons = ' | '.join(vcpus['reasons'])
        self.assertIn('current_vcpus 5: it must be from 2 to 4', reasons)
        self.assertIn('locked', reasons)
        self.assertIn('task in progress: rebooting', reasons)
        # The memory is in range but the server is not adjustable now.
        memory = answer['current_memory_mb']
        self.assertFalse(memory['applicable'])
        reasons = ' | '.join(memory['reasons'])
        self.assertNotIn('must be from', reasons)
        self.assertIn('locked', reasons)
        self.assertIn('task in progress: rebooting', reasons)

    def test_dry_run_unsafe_shrink(self):
        self._live(memory_mb=2048)
        self._guest_uses(2048, 548)
        answer = self._dry_run({'current_memory_mb': 1024})
        self.assertFalse(answer['applicable'])
        self.assertEqual(1, len(answer['current_memory_mb']['reasons']))
        self.assertIn('the smallest safe target is 1628 MiB',
                      answer['current_memory_mb']['reasons'][0])
        # With force: applicable, and the guest is not asked.
        self.rpc.guest_memory.reset_mock()
        answer = self._dry_run({'current_memory_mb': 1024, 'force': True})
        self.assertTrue(answer['applicable'])
        self.rpc.guest_memory.assert_not_called()

    def test_dry_run_no_balloon_and_unsettled_vcpus(self):
        self.rpc.describe_host.return_value['memory_balloon'] = False
        self.instance.system_metadata['xloud_vcpus_unsettled'] = '3'
        answer = self._dry_run({'current_vcpus': 3,
                                'current_memory_mb': 2048})
        self.assertEqual([compute_adjust.UNSETTLED_MESSAGE + '.'],
                         answer['current_vcpus']['reasons'])
        self.assertEqual(1, len(answer['current_memory_mb']['reasons']))
        self.assertIn('no usable memory balloon',
                      answer['current_memory_mb']['reasons'][0])

    def test_dry_run_compute_without_nova_xloud(self):
        self.rpc.describe_host.side_effect = messaging.UnsupportedVersion(
            '1.0')
        answer = self._dry_run({'current_vcpus': 3,
                                'current_memory_mb': 1536})
        for field in ('current_vcpus', 'current_memory_mb'):
            self.assertFalse(answer[field]['applicable'])
            self.assertIn('The compute service on host compute1 does not '
                          'run nova-xloud.', answer[field]['reasons'])
        self.rpc.guest_memory.assert_not_called()
        self.is_up.return_value = False
        answer = self._dry_run({'current_vcpus': 3})
        self.assertIn('The compute service on host compute1 is down.',
                      answer['current_vcpus']['reasons'])

    def test_dry_run_host_without_room(self):
        self.room.return_value = {
            'VCPU': placement.Room(capacity=16, used=16, held=2,
                                   max_unit=16),
            'MEMORY_MB': placement.Room(capacity=8192, used=7680,
                                        held=1024, max_unit=8192)}
        answer = self._dry_run({'current_vcpus': 4,
                                'current_memory_mb': 2048})
        self.assertEqual(
            ['Host compute1 cannot hold it: host has 0 VCPU free of 16, 2 '
             'more needed.'], answer['current_vcpus']['reasons'])
        self.assertEqual(
            ['Host compute1 cannot hold it: host has 512 MEMORY_MB free of '
             '8192, 1024 more needed.'],
            answer['current_memory_mb']['reasons'])

    def test_dry_run_placement_unavailable(self):
        self.room.side_effect = placement.PlacementUnavailable(
            amounts='nothing', uuid=UUID, host='compute1',
            reason='placement could not be reached')
        answer = self._dry_run({'current_vcpus': 4})
        self.assertFalse(answer['applicable'])
        self.assertIn('placement could not be reached',
                      answer['current_vcpus']['reasons'][0])

    def test_dry_run_not_on_a_host(self):
        self.instance.host = None
        answer = self._dry_run({'current_vcpus': 3})
        self.assertEqual(['Server %s is not on a host.' % UUID],
                         answer['current_vcpus']['reasons'])
        self.room.assert_not_called()
        self.rpc.describe_host.assert_not_called()

    def test_dry_run_bad_request_is_still_400(self):
        # Only what can change is answered: a malformed body is refused.
        for body in ({'dry_run': True},
                     {'current_vcpus': 'x', 'dry_run': True}):
            self.assertRaises(
                (exception.ValidationError, webob.exc.HTTPBadRequest),
                self._adjust, body)
        self._assert_nothing_done()

    def test_dry_run_is_authorized_as_an_adjustment(self):
        req = fakes.HTTPRequest.blank('', roles=['member', 'reader'])
        self.assertRaises(exception.PolicyNotAuthorized,
                          self.controller.adjust, req, UUID,
                          body={'current_vcpus': 3, 'dry_run': True})
        self.room.assert_not_called()

    def test_show(self):
        self.instance.system_metadata = {
            'xloud_live_vcpus': '3', 'xloud_live_memory_mb': '2048',
            'xloud_live_flavorid': 'xl-id', 'xloud_last_request_id':
            'req-a4b6ac2c-6a49-4a40-8fb4-4b8e2b7b0b0e',
            'xloud_last_status': 'error', 'xloud_last_message': 'boom',
            'xloud_allocation_stale': 'placement could not be reached'}
        result = self.controller.show(self.req, UUID)
        compat.validate_response(schema.show_response, result)
        expected = {
            'server_id': UUID, 'minimum_vcpus': 2, 'current_vcpus': 3,
            'maximum_vcpus': 4, 'minimum_memory_mb': 1024,
            'current_memory_mb': 2048, 'maximum_memory_mb': 4096,
            'persisted': False,
            'last_request_id': 'req-a4b6ac2c-6a49-4a40-8fb4-4b8e2b7b0b0e',
            'last_status': 'error', 'last_message': 'boom',
            'requested_vcpus': None, 'requested_memory_mb': None,
            'allocation_stale': 'placement could not be reached',
            'observed': {
                'vcpus': {'online': None, 'source': None,
                          'observed_at': None,
                          'reason': records.NOT_OBSERVED},
                'memory': {'actual_mb': None, 'available_mb': None,
                           'usable_mb': None, 'source': None,
                           'observed_at': None,
                           'reason': records.NOT_OBSERVED}}}
        self.assertEqual(expected, result['adjustment'])

    def test_show_requested_and_observed(self):
        records.start_adjustment(self.instance, REQUEST_ID, vcpus=4,
                                 memory_mb=3072)
        records.set_observed(
            self.instance,
            vcpus=records.observe_vcpus(online=3,
                                        observed_at='2026-01-02T03:04:05Z'),
            memory=records.observe_memory(
                actual_mb=3072, available_mb=3040, usable_mb=2800,
                observed_at='2026-01-02T03:04:06Z'))
        result = self.controller.show(self.req, UUID)
        compat.validate_response(schema.show_response, result)
        shown = result['adjustment']
        self.assertEqual((4, 3072), (shown['requested_vcpus'],
                                     shown['requested_memory_mb']))
        self.assertEqual({
            'vcpus': {'online': 3, 'source': 'guest-agent',
                      'observed_at': '2026-01-02T03:04:05Z',
                      'reason': None},
            'memory': {'actual_mb': 3072, 'available_mb': 3040,
                       'usable_mb': 2800, 'source': 'balloon-statistics',
                       'observed_at': '2026-01-02T03:04:06Z',
                       'reason': None}}, shown['observed'])
        # GET asks nothing of the compute.
        self.rpc.describe_host.assert_not_called()
        self.rpc.guest_memory.assert_not_called()

    def test_show_observed_without_source(self):
        records.set_observed(
            self.instance,
            vcpus=records.observe_vcpus(reason='no agent',
                                        observed_at='2026-01-02T03:04:05Z'),
            memory=records.observe_memory(reason='no balloon',
                                          observed_at='2026-01-02T03:04:05Z'))
        result = self.controller.show(self.req, UUID)
        compat.validate_response(schema.show_response, result)
        observed = result['adjustment']['observed']
        self.assertEqual((None, None, 'no agent'), (
            observed['vcpus']['online'], observed['vcpus']['source'],
            observed['vcpus']['reason']))
        self.assertEqual((None, None, 'no balloon'), (
            observed['memory']['actual_mb'], observed['memory']['source'],
            observed['memory']['reason']))


class RoutesTestCase(test.NoDBTestCase):

    def test_routes(self):
        (path, methods), (legacy_path, legacy_methods) = routes.routes()
        self.assertEqual('/os-xloud-adjust/{server_id}', path)
        # The original XLoud fork's path: the same controller.
        self.assertEqual('/servers/{server_id}/os-xloud-adjust', legacy_path)
        self.assertIs(methods, legacy_methods)
        self.assertEqual({'GET': 'show', 'POST': 'adjust'},
                         {m: info[1] for m, info in methods.items()})
        resource = methods['GET'][0]()
        self.assertIsInstance(resource, os_wsgi.Resource)
        self.assertIsInstance(resource.controller, adjust.AdjustController)

    def test_served_by_the_v21_router(self):
        nova_routes._plugin_routes.cache_clear()
        self.addCleanup(nova_routes._plugin_routes.cache_clear)
        router = nova_routes.APIRouterV21()
        for method, path in itertools.product(
                ('GET', 'POST'), ('/os-xloud-adjust/%s',
                                  '/servers/%s/os-xloud-adjust')):
            match = router.map.match(
                path % UUID, {'REQUEST_METHOD': method})
            self.assertEqual(UUID, match['server_id'])
            self.assertEqual({'GET': 'show', 'POST': 'adjust'}[method],
                             match['action'])


class CompatTestCase(test.NoDBTestCase):

    def test_request_body_schema_on_2024_1(self):
        @compat.request_body_schema(schema.adjust)
        def method(self, req, body):
            return body

        req = fakes.HTTPRequest.blank('')
        self.assertEqual({'current_vcpus': 2},
                         method(None, req, body={'current_vcpus': 2}))
        self.assertRaises(exception.ValidationError, method, None, req,
                          body={'current_vcpus': 0})

    def test_response_body_schema_is_inert_without_support(self):
        def method():
            return 'result'

        with mock.patch.object(compat.validation, 'response_body_schema',
                               create=True, new=None):
            self.assertIs(method,
                          compat.response_body_schema(schema.adjust)(method))

    def test_controller_is_marked_validated_where_nova_has_the_mark(self):
        marked = hasattr(compat.validation, 'validated')
        self.assertEqual(marked, getattr(adjust.AdjustController,
                                         '_validated', False))

    def test_validated_is_inert_without_support(self):
        class Controller(object):
            pass

        with mock.patch.object(compat.validation, 'validated', create=True,
                               new=None):
            self.assertIs(Controller, compat.validated(Controller))
            self.assertFalse(hasattr(Controller, '_validated'))
