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

import threading
from unittest import mock

import fixtures
from nova import context as nova_context
from nova.db.main import api as db
from nova import exception
from nova import objects
from nova import test
import oslo_messaging as messaging
from oslo_serialization import jsonutils
from oslo_utils.fixture import uuidsentinel as uuids

from nova_xloud import records
from nova_xloud import store


class StoreTestBase(test.TestCase):

    def setUp(self):
        super().setUp()
        self.ctxt = nova_context.get_admin_context()
        self.instance = self._create(uuids.instance, {
            'image_base_image_ref': 'img', 'xloud_last_status': 'success'})

    def _create(self, uuid, sysmeta):
        db.instance_create(self.ctxt, {'uuid': uuid,
                                       'system_metadata': sysmeta})
        return objects.Instance.get_by_uuid(
            self.ctxt, uuid, expected_attrs=['system_metadata'])

    def _stored(self, uuid=uuids.instance):
        return db.instance_system_metadata_get(self.ctxt, uuid)

    def _start_twice_second_copy_stale(self):
        """Start r1 through a fresh copy, then r2 through self.instance.

        self.instance was loaded before r1, so its records are stale.
        Returns the sequence r2 got.
        """
        other = objects.Instance.get_by_uuid(
            self.ctxt, uuids.instance, expected_attrs=['system_metadata'])
        store.update(self.ctxt, other, records.start_adjustment, 'r1')
        return store.update(self.ctxt, self.instance,
                            records.start_adjustment, 'r2')

    def _assert_twenty_at_once_get_distinct_sequences(self):
        numbers = []
        copies = [objects.Instance.get_by_uuid(
            self.ctxt, uuids.instance, expected_attrs=['system_metadata'])
            for _ in range(20)]

        def start(index):
            numbers.append(store.update(
                self.ctxt, copies[index], records.start_adjustment,
                'req-%d' % index))
        threads = [threading.Thread(target=start, args=(n,))
                   for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(list(range(1, 21)), sorted(numbers))
        self.assertEqual('20', self._stored()['xloud_adjust_seq'])


class StoreTestCase(StoreTestBase):

    def test_writes_only_changed_records(self):
        def change(view):
            view.system_metadata['xloud_adjust_seq'] = '1'
            view.system_metadata.pop('xloud_last_status')
            return 'done'
        self.assertEqual('done', store.update(self.ctxt, self.instance,
                                              change))
        self.assertEqual({'image_base_image_ref': 'img',
                          'xloud_adjust_seq': '1'}, self._stored())
        # The in-memory instance shows them, as saved.
        self.assertEqual({'image_base_image_ref': 'img',
                          'xloud_adjust_seq': '1'},
                         self.instance.system_metadata)
        self.assertNotIn('system_metadata', self.instance.obj_what_changed())
        # A later save by Nova neither rewrites nor deletes them.
        self.instance.task_state = 'rebooting'
        self.instance.save()
        self.assertEqual('1', self._stored()['xloud_adjust_seq'])

    def test_change_sees_stored_records_not_the_stale_copy(self):
        other = objects.Instance.get_by_uuid(
            self.ctxt, uuids.instance, expected_attrs=['system_metadata'])
        self.assertEqual(1, store.update(self.ctxt, other,
                                         records.start_adjustment, 'req-1'))
        self.assertEqual(2, store.update(self.ctxt, self.instance,
                                         records.start_adjustment, 'req-2'))
        self.assertEqual(('2', 'req-2', 'pending'), (
            self._stored()['xloud_adjust_seq'],
            self._stored()['xloud_last_request_id'],
            self._stored()['xloud_last_status']))
        # The stale copy shows what is stored now, Nova's keys untouched.
        self.assertEqual('img', self.instance.system_metadata[
            'image_base_image_ref'])
        self.assertEqual('2', self.instance.system_metadata[
            'xloud_adjust_seq'])

    def test_retried_when_a_record_changed_meanwhile(self):
        calls = []

        def change(view):
            calls.append(dict(view.system_metadata))
            if len(calls) == 1:
                # Another writer (a whole-dict save) between our read and
                # our write.
                db.instance_system_metadata_update(
                    nova_context.get_admin_context(), uuids.instance,
                    {'image_base_image_ref': 'img',
                     'xloud_last_status': 'error'}, False)
            view.system_metadata['xloud_last_status'] = 'pending'
            return len(calls)
        self.assertEqual(2, store.update(self.ctxt, self.instance, change))
        self.assertEqual('error', calls[1]['xloud_last_status'])
        self.assertEqual('pending', self._stored()['xloud_last_status'])

    def test_insert_race_is_retried(self):
        def change(view):
            if 'xloud_adjust_seq' not in view.system_metadata:
                db.instance_system_metadata_update(
                    nova_context.get_admin_context(), uuids.instance,
                    {'xloud_adjust_seq': '7'}, False)
            return records.start_adjustment(view, 'req-1')
        self.assertEqual(8, store.update(self.ctxt, self.instance, change))
        rows = [row for row in db.instance_get_by_uuid(
            self.ctxt, uuids.instance, columns_to_join=['system_metadata'])[
                'system_metadata'] if row['key'] == 'xloud_adjust_seq']
        self.assertEqual(['8'], [row['value'] for row in rows])

    def test_gives_up_when_records_keep_changing(self):
        count = []

        def change(view):
            count.append(1)
            db.instance_system_metadata_update(
                nova_context.get_admin_context(), uuids.instance,
                {'xloud_last_status': str(len(count))}, False)
            view.system_metadata['xloud_last_status'] = 'pending'
        self.assertRaises(store.RecordsConflict, store.update, self.ctxt,
                          self.instance, change)
        self.assertEqual(store.MAX_ATTEMPTS, len(count))

    def test_unknown_instance(self):
        instance = objects.Instance(self.ctxt, uuid=uuids.missing,
                                    system_metadata={})
        self.assertRaises(exception.InstanceNotFound, store.update,
                          self.ctxt, instance, records.start_adjustment,
                          'req-1')

    def test_read_and_uuids_with(self):
        self._create(uuids.other, {'xloud_allocation_stale': 'down'})
        self.assertEqual({'xloud_last_status': 'success'},
                         store.read(self.ctxt, uuids.instance))
        self.assertEqual([uuids.other], store.uuids_with(
            self.ctxt, records.ALLOCATION_STALE))

    def test_concurrent_sequences_are_distinct(self):
        self._assert_twenty_at_once_get_distinct_sequences()


class StoreSwapTestCase(StoreTestBase):
    """swap(): the compare-and-swap that runs where the database is."""

    def test_writes_when_the_records_are_as_expected(self):
        self.assertEqual((True, None), store.swap(
            self.ctxt, uuids.instance, {'xloud_last_status': 'success'},
            {'xloud_last_status': None, 'xloud_adjust_seq': '1'}))
        self.assertEqual({'image_base_image_ref': 'img',
                          'xloud_adjust_seq': '1'}, self._stored())

    def test_returns_the_stored_records_when_they_differ(self):
        for expected in ({}, {'xloud_last_status': 'error'},
                         {'xloud_last_status': 'success',
                          'xloud_adjust_seq': '1'}):
            self.assertEqual(
                (False, {'xloud_last_status': 'success'}),
                store.swap(self.ctxt, uuids.instance, expected,
                           {'xloud_adjust_seq': '9'}), expected)
        self.assertNotIn('xloud_adjust_seq', self._stored())

    def test_a_row_changed_after_the_read_writes_nothing(self):
        # A whole-dict Instance.save() by Nova between the read and the
        # conditional write: the transaction writes nothing and the
        # records are read again.
        real_write = store._write

        def write_after_another_writer(context, uuid, rows, changes):
            rows = dict(rows, xloud_last_status=(
                rows['xloud_last_status'][0], 'not what is stored'))
            return real_write(context, uuid, rows, changes)
        with mock.patch.object(store, '_write',
                               side_effect=write_after_another_writer):
            self.assertEqual((False, {'xloud_last_status': 'success'}),
                             store.swap(self.ctxt, uuids.instance,
                                        {'xloud_last_status': 'success'},
                                        {'xloud_adjust_seq': '1',
                                         'xloud_last_status': 'pending'}))
        self.assertEqual({'image_base_image_ref': 'img',
                          'xloud_last_status': 'success'}, self._stored())

    def test_unknown_instance(self):
        self.assertRaises(exception.InstanceNotFound, store.swap,
                          self.ctxt, uuids.missing, {}, {})


class FakeConductor(object):
    """The conductor endpoint, in this process, counting its calls."""

    def __init__(self, error=None):
        self.calls = []
        self.error = error

    def swap_records(self, ctxt, instance_uuid, expected, changes):
        self.calls.append((instance_uuid, expected, changes))
        if self.error is not None:
            raise self.error
        # Through JSON, as oslo.messaging sends it.
        return list(jsonutils.loads(jsonutils.dumps(
            store.swap(ctxt, instance_uuid, expected, changes))))


class StoreWithoutDatabaseTestCase(StoreTestBase):
    """nova-compute: the records are written by nova-conductor."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.store._database_here', return_value=False))
        store._warn_conductor_without_endpoint.cache_clear()
        self.addCleanup(store._warn_conductor_without_endpoint.cache_clear)

        self.conductor = FakeConductor()
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.store._conductor_api', return_value=self.conductor))

    def _conductor(self, error=None):
        self.conductor.error = error
        return self.conductor

    def test_written_by_the_conductor_keeping_the_callers_changes(self):
        conductor = self._conductor()
        # The caller holds changes Nova has not saved (yet).
        self.instance.task_state = 'resize_prep'
        with mock.patch.object(objects.Instance, 'save') as save:
            self.assertEqual(2, self._start_twice_second_copy_stale())
        save.assert_not_called()
        stored = self._stored()
        self.assertEqual(('img', '2', 'r2', 'pending'), (
            stored['image_base_image_ref'], stored['xloud_adjust_seq'],
            stored['xloud_last_request_id'], stored['xloud_last_status']))
        self.assertIsNone(objects.Instance.get_by_uuid(
            self.ctxt, uuids.instance).task_state)
        self.assertEqual('2', self.instance.system_metadata[
            'xloud_adjust_seq'])
        self.assertEqual({'task_state'}, self.instance.obj_what_changed())
        # The stale copy's first guess was refused and retried on what the
        # conductor returned: three calls for two writes.
        self.assertEqual(3, len(conductor.calls))
        self.assertEqual({'xloud_last_status': 'success'},
                         conductor.calls[1][1])

    def test_concurrent_sequences_are_distinct(self):
        self._conductor()
        self._assert_twenty_at_once_get_distinct_sequences()

    def _missing_endpoint_errors(self):
        return [messaging.RemoteError('UnsupportedVersion', 'no xloud'),
                messaging.RemoteError('NoSuchMethod', 'no swap_records'),
                messaging.UnsupportedVersion('1.0')]

    def test_conductor_without_the_endpoint_loads_compares_saves(self):
        for error in self._missing_endpoint_errors():
            self._conductor(error)
            with self.assertLogs('nova_xloud.store', 'WARNING') as logs:
                store.update(self.ctxt, self.instance,
                             records.start_adjustment, 'r')
            self.assertIn('nova-conductor does not run nova-xloud',
                          logs.output[0])
            store._warn_conductor_without_endpoint.cache_clear()
        self.assertEqual('3', self._stored()['xloud_adjust_seq'])

    def test_the_fallback_warns_once_and_retries_on_stale_records(self):
        self._conductor(self._missing_endpoint_errors()[0])
        with mock.patch.object(store.LOG, 'warning') as warning:
            self.assertEqual(2, self._start_twice_second_copy_stale())
        self.assertEqual(1, warning.call_count)
        self.assertEqual('r2', self._stored()['xloud_last_request_id'])

    def test_the_fallback_saves_nothing_when_nothing_changed(self):
        self._conductor(self._missing_endpoint_errors()[0])
        with mock.patch.object(objects.Instance, 'save') as save:
            store.update(self.ctxt, self.instance, lambda view: None)
        save.assert_not_called()

    def test_other_conductor_errors_change_nothing(self):
        for error in (messaging.MessagingTimeout('no answer'),
                      messaging.RemoteError('DBError', 'gone'),
                      exception.InstanceNotFound(instance_id='x')):
            self._conductor(error)
            self.assertRaises(type(error), store.update, self.ctxt,
                              self.instance, records.start_adjustment, 'r')
        self.assertEqual({'image_base_image_ref': 'img',
                          'xloud_last_status': 'success'}, self._stored())


class StoreCellTestCase(test.TestCase):
    """The records go to the database the given context targets."""

    NUMBER_OF_CELLS = 2

    def test_targets_the_cell_of_the_context(self):
        ctxt = nova_context.get_admin_context()
        cell = self.cell_mappings['cell2']
        with nova_context.target_cell(ctxt, cell) as cctxt:
            db.instance_create(cctxt, {'uuid': uuids.instance})
            instance = objects.Instance.get_by_uuid(
                cctxt, uuids.instance, expected_attrs=['system_metadata'])
            store.update(cctxt, instance, records.start_adjustment, 'r')
            self.assertEqual({'xloud_adjust_seq': '1',
                              'xloud_last_request_id': 'r',
                              'xloud_last_status': 'pending'},
                             store.read(cctxt, uuids.instance))
        with nova_context.target_cell(
                ctxt, self.cell_mappings['cell1']) as cctxt:
            self.assertEqual({}, store.read(cctxt, uuids.instance))
            self.assertRaises(exception.InstanceNotFound,
                              db.instance_get_by_uuid, cctxt, uuids.instance)
