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


class StoreWithoutDatabaseTestCase(StoreTestBase):
    """nova-compute: the objects reach the database through conductor."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.store._database_here', return_value=False))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.store._update_once',
            side_effect=AssertionError('no database in nova-compute')))

    def test_writes_through_a_fresh_copy_and_keeps_the_callers_changes(self):
        # The caller holds changes Nova has not saved (yet).
        self.instance.task_state = 'resize_prep'
        other = objects.Instance.get_by_uuid(
            self.ctxt, uuids.instance, expected_attrs=['system_metadata'])
        store.update(self.ctxt, other, records.start_adjustment, 'req-1')
        self.assertEqual(2, store.update(self.ctxt, self.instance,
                                         records.start_adjustment, 'req-2'))
        stored = self._stored()
        self.assertEqual(('img', '2', 'req-2', 'pending'), (
            stored['image_base_image_ref'], stored['xloud_adjust_seq'],
            stored['xloud_last_request_id'], stored['xloud_last_status']))
        self.assertIsNone(objects.Instance.get_by_uuid(
            self.ctxt, uuids.instance).task_state)
        self.assertEqual('2', self.instance.system_metadata[
            'xloud_adjust_seq'])
        self.assertEqual({'task_state'}, self.instance.obj_what_changed())

    def test_nothing_changed_saves_nothing(self):
        with mock.patch.object(objects.Instance, 'save') as save:
            store.update(self.ctxt, self.instance, lambda view: None)
        save.assert_not_called()


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
