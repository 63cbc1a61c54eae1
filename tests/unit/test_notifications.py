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

from nova.objects import base as nova_base
from nova import test
from oslo_versionedobjects import fixture

from nova_xloud import notifications

# Change a class's fields, then bump its VERSION and update its hash here.
OBJECT_DATA = {
    'XloudAdjustNotification': '1.0-a73147b93b520ff0061865849d3dfa56',
    'XloudAdjustPayload': '1.0-1f825281ff8974983e86fad9b9ad8809',
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
