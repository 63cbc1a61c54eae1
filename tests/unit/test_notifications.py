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

import subprocess
import sys

from nova import context
from nova.objects import base as nova_base
from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.tests.unit import fake_instance
from oslo_utils.fixture import uuidsentinel as uuids
from oslo_versionedobjects import fixture

from nova_xloud import notifications
from nova_xloud import records
from nova_xloud.virt import resources

# Change a class's fields, then bump its VERSION and update its hash here.
OBJECT_DATA = {
    'XloudAdjustNotification': '1.0-a73147b93b520ff0061865849d3dfa56',
    'XloudAdjustPayload': '1.1-2dc031839ffeeeb835555be3997caeda',
}

NOVA_HASH_CHECK = ('nova.tests.unit.notifications.objects.test_notification.'
                   'TestNotificationObjectVersions.test_versions')


class NotificationObjectsTestCase(test.NoDBTestCase):

    def test_versions(self):
        checker = fixture.ObjectVersionChecker(
            {cls.obj_name(): [cls]
             for cls in notifications.NOTIFICATION_CLASSES})
        expected, actual = checker.test_hashes(OBJECT_DATA)
        self.assertEqual(expected, actual,
                         'a notification object changed: bump its version'
                         ' and update its hash')

    def test_kept_out_of_novas_notification_classes(self):
        self.assertEqual(
            [notifications.XloudAdjustPayload,
             notifications.XloudAdjustNotification],
            notifications.NOTIFICATION_CLASSES)
        for cls in notifications.NOTIFICATION_CLASSES:
            self.assertNotIn(cls,
                             nova_base.NovaObjectRegistry.notification_classes)

    def test_novas_own_hash_check_passes_beside_ours(self):
        # As a distribution runs Nova's unit tests with nova-xloud
        # installed: our classes are imported before Nova's check runs.
        result = subprocess.run(
            [sys.executable, '-c',
             'import sys; import nova_xloud.notifications; '
             'from testtools import run; '
             'run.main(["testtools.run", sys.argv[1]], sys.stdout)',
             NOVA_HASH_CHECK],
            capture_output=True, text=True)
        self.assertEqual(0, result.returncode,
                         result.stdout[-3000:] + result.stderr[-3000:])
        self.assertIn('Ran 1 test', result.stdout + result.stderr)


class NotifyTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.flags(notification_format='versioned', group='notifications')
        self.notifier = self.useFixture(nova_fixtures.NotificationFixture(
            self))
        self.ctxt = context.get_admin_context()
        self.instance = fake_instance.fake_instance_obj(
            self.ctxt, uuid=uuids.instance)
        self.instance.system_metadata = {}

    def _notify(self, phase=notifications.END, message=None):
        notifications.notify(
            self.ctxt, 'compute1', phase, self.instance,
            resources.Resources(2, 1024), resources.Resources(3, 2048),
            True, message)
        self.assertEqual(1, len(self.notifier.versioned_notifications))
        sent = self.notifier.versioned_notifications.pop()
        self.assertEqual('1.1', sent['payload']['nova_object.version'])
        return sent

    def test_observed_values(self):
        records.set_observed(
            self.instance, vcpus=records.observe_vcpus(online=3),
            memory=records.observe_memory(actual_mb=2048, available_mb=2016,
                                          usable_mb=1800))
        sent = self._notify()
        self.assertEqual('xloud_adjust.update.end', sent['event_type'])
        self.assertEqual('INFO', sent['priority'])
        data = sent['payload']['nova_object.data']
        self.assertEqual((3, 2048, 1800), (
            data['observed_vcpus'], data['observed_memory_mb'],
            data['observed_usable_mb']))
        self.assertEqual((2, 1024, 3, 2048), (
            data['old_vcpus'], data['old_memory_mb'], data['new_vcpus'],
            data['new_memory_mb']))

    def test_not_observed_is_null(self):
        sent = self._notify(notifications.ERROR, 'boom')
        self.assertEqual('ERROR', sent['priority'])
        data = sent['payload']['nova_object.data']
        self.assertEqual((None, None, None, 'boom'), (
            data['observed_vcpus'], data['observed_memory_mb'],
            data['observed_usable_mb'], data['message']))
