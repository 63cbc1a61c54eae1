import os

import fixtures
import testtools

from nova_xloud.series import upstream_tests
from tests.unit.series import fakes


class TestModulesTestCase(testtools.TestCase):

    def test_each_hooked_file_maps_to_its_upstream_test_module(self):
        root = self.useFixture(fixtures.TempDir()).path
        fakes.write(root, 'nova/tests/unit/virt/libvirt/test_config.py', '')
        fakes.write(root, 'nova/tests/unit/compute/test_api.py', '')
        modules = upstream_tests.test_modules(root, [
            'nova/virt/libvirt/config.py', 'nova/compute/api.py',
            # No upstream test module: left out.
            'nova/virt/libvirt/guest_hooks.py',
            # Not code, or tests themselves: left out.
            'nova/.nova-xloud-series.json',
            'nova/tests/unit/virt/libvirt/test_config.py'])
        self.assertEqual(['nova.tests.unit.compute.test_api',
                          'nova.tests.unit.virt.libvirt.test_config'],
                         modules)

    def test_files_tested_by_other_modules(self):
        root = self.useFixture(fixtures.TempDir()).path
        fakes.write(root, 'nova/tests/unit/compute/test_compute_mgr.py', '')
        fakes.write(root, 'nova/tests/unit/test_service.py', '')
        self.assertEqual(
            ['nova.tests.unit.compute.test_compute_mgr',
             'nova.tests.unit.test_service'],
            upstream_tests.test_modules(root, ['nova/compute/manager.py']))

    def test_api_paste_is_linked_beside_nova_for_the_run_only(self):
        prefix = self.useFixture(fixtures.TempDir()).path
        root = self.useFixture(fixtures.TempDir()).path
        fakes.write(prefix, 'etc/nova/api-paste.ini', '[composite:x]\n')
        self.useFixture(fixtures.MonkeyPatch('sys.prefix', prefix))
        expected = os.path.join(root, 'etc', 'nova', 'api-paste.ini')
        with upstream_tests.api_paste_beside_nova(root):
            with open(expected) as handle:
                self.assertEqual('[composite:x]\n', handle.read())
        self.assertEqual([], os.listdir(root))
