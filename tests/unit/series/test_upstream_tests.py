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

    def test_the_run_imports_nova_beside_its_api_paste(self):
        prefix = self.useFixture(fixtures.TempDir()).path
        root = self.useFixture(fixtures.TempDir()).path
        fakes.write(prefix, 'etc/nova/api-paste.ini', '[composite:x]\n')
        fakes.write(root, 'nova/__init__.py', '')
        self.useFixture(fixtures.MonkeyPatch('sys.prefix', prefix))
        seen = {}

        def fake_call(command, cwd):
            seen['command'] = command
            seen['nova'] = os.path.realpath(os.path.join(cwd, 'nova'))
            with open(os.path.join(cwd, 'etc/nova/api-paste.ini')) as paste:
                seen['paste'] = paste.read()
            return 0

        self.useFixture(fixtures.MockPatch(
            'nova_xloud.series.upstream_tests.subprocess.run'))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.series.upstream_tests.subprocess.call',
            side_effect=fake_call))
        self.assertEqual(0, upstream_tests.run_stestr(root, ['^x']))
        self.assertEqual(os.path.realpath(os.path.join(root, 'nova')),
                         seen['nova'])
        self.assertEqual('[composite:x]\n', seen['paste'])
        self.assertEqual(['run', '^x'], seen['command'][-2:])
        self.assertEqual(['nova'], sorted(os.listdir(root)))

    def test_skipped_modules_are_left_out_of_the_filter(self):
        root = self.useFixture(fixtures.TempDir()).path
        for module in ('compute/test_compute_mgr', 'compute/test_compute',
                       'test_service'):
            fakes.write(root, 'nova/tests/unit/%s.py' % module, '')
        regex = upstream_tests.hooked_modules_regex(
            root, {'files': ['nova/compute/manager.py']}, ['test_compute'])
        self.assertEqual('^(nova\\.tests\\.unit\\.compute\\.test_compute_mgr|'
                         'nova\\.tests\\.unit\\.test_service)\\.', regex)

    def test_skip_with_whole_is_a_usage_error(self):
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.series.upstream_tests.installed_nova_root'))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.series.target.find'))
        self.assertEqual(2, upstream_tests.main(
            ['--whole', '--skip', 'test_compute']))

    def test_skip_with_moves_is_a_usage_error(self):
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.series.upstream_tests.installed_nova_root'))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.series.target.find'))
        self.assertEqual(2, upstream_tests.main(
            ['--moves', '--skip', 'test_compute']))

    def test_whole_and_moves_exclude_each_other(self):
        self.useFixture(fixtures.MockPatch('sys.stderr'))
        self.assertRaises(SystemExit, upstream_tests.parse_args,
                          ['--whole', '--moves'])

    def test_moves_run_the_functional_move_tests_this_nova_has(self):
        root = self.useFixture(fixtures.TempDir()).path
        for module in ('test_servers', 'test_cold_migrate',
                       'libvirt/test_evacuate'):
            fakes.write(root, 'nova/tests/functional/%s.py' % module, '')
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.series.upstream_tests.installed_nova_root',
            return_value=root))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.series.target.find'))
        run = self.useFixture(fixtures.MockPatch(
            'nova_xloud.series.upstream_tests.run_stestr',
            return_value=0)).mock
        self.assertEqual(0, upstream_tests.main(['--moves', '--no-subunit']))
        run.assert_called_once_with(
            root, ['^(nova\\.tests\\.functional\\.test_servers\\.'
                   'ServerMovingTests|'
                   'nova\\.tests\\.functional\\.test_cold_migrate|'
                   'nova\\.tests\\.functional\\.libvirt\\.test_evacuate)\\.',
                   '--no-subunit'], suite='functional')

    def test_the_functional_suite_is_run_from_its_own_path(self):
        command = upstream_tests.stestr_command('/r', 'functional')
        self.assertEqual(['--test-path', '/r/nova/tests/functional',
                          '--top-dir', '/r'], command[-4:])
