import io
import os
from unittest import mock

import fixtures
import testtools

from nova_xloud.cmd import series as cli
from nova_xloud import releases
from tests.unit.series import fakes


class CommandTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.patches_dir = self.useFixture(fixtures.TempDir()).path
        self.cache = self.useFixture(fixtures.TempDir()).path
        fakes.make_series(self.patches_dir)
        fakes.make_nova_tree(self.root)

    def _run(self, *argv):
        out = self.useFixture(fixtures.MonkeyPatch('sys.stdout',
                                                   io.StringIO())).new_value
        err = self.useFixture(fixtures.MonkeyPatch('sys.stderr',
                                                   io.StringIO())).new_value
        try:
            code = cli.main(['--patches-dir', self.patches_dir,
                             '--cache-dir', self.cache] + list(argv))
        except SystemExit as exc:
            code = exc.code
        return code, out.getvalue(), err.getvalue()

    def test_releases_lists_every_release_with_its_patch_count(self):
        code, out, _ = self._run('releases')
        self.assertEqual(0, code)
        lines = out.splitlines()
        self.assertEqual(['RELEASE', 'NOVA', 'PATCHES', 'TESTED'],
                         lines[0].split())
        self.assertEqual(['2024.1', '29.4.0', '2', 'yes'], lines[1].split())
        self.assertEqual(['2024.1', '2025.1', '2025.2', '2026.1', '2026.2'],
                         [line.split()[0] for line in lines[1:]])

    def test_apply_status_and_reverse(self):
        before = fakes.snapshot(self.root)
        code, out, _ = self._run('apply', '2024.1', self.root)
        self.assertEqual(0, code)
        self.assertIn('applied the 2024.1 series (2 patches)', out)
        code, out, _ = self._run('apply', '2024.1', self.root)
        self.assertEqual(0, code)
        self.assertIn('already applied', out)
        code, out, _ = self._run('status', self.root)
        self.assertIn('series:        2024.1, applied (2 patches)', out)
        self.assertIn('changed since: nothing', out)
        code, out, _ = self._run('apply', '--reverse', '2024.1', self.root)
        self.assertEqual(0, code)
        self.assertEqual(before, fakes.snapshot(self.root))

    def test_conflict_exits_1_naming_patch_file_and_hunk(self):
        fakes.write(self.root, 'nova/api.py', 'changed upstream\n')
        before = fakes.snapshot(self.root)
        code, out, err = self._run('apply', '2024.1', self.root)
        self.assertEqual(1, code)
        self.assertIn('api-capitalise-d.patch', err)
        self.assertIn('file nova/api.py, hunk #1', err)
        self.assertNotIn('Traceback', err)
        self.assertEqual(before, fakes.snapshot(self.root))

    def test_unknown_release_is_a_usage_error(self):
        code, _, err = self._run('apply', '2023.2', self.root)
        self.assertEqual(2, code)
        self.assertIn("unknown release '2023.2'", err)
        self.assertIn('2024.1, 2025.1', err)

    def test_missing_target_is_a_usage_error(self):
        code, _, err = self._run('apply', '2024.1',
                                 os.path.join(self.root, 'nope'))
        self.assertEqual(2, code)
        self.assertIn('is not a directory', err)

    def test_missing_argument_is_a_usage_error(self):
        code, _, _ = self._run('apply', '2024.1')
        self.assertEqual(2, code)

    def test_status_json(self):
        code, out, _ = self._run('status', '--format', 'json', self.root)
        self.assertEqual(0, code)
        self.assertIn('"applied": false', out)
        self.assertIn('"nova_version": "29.4.0"', out)

    def test_unreadable_file_is_reported_without_a_traceback(self):
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.series.engine.PendingTree.read',
            side_effect=PermissionError(13, 'Permission denied',
                                        'nova/api.py')))
        code, _, err = self._run('apply', '2024.1', self.root)
        self.assertEqual(1, code)
        self.assertIn('error: nova/api.py: Permission denied', err)
        self.assertNotIn('Traceback', err)


class DemoCommandTestCase(CommandTestCase):

    def setUp(self):
        super().setUp()
        self.prepare = self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.prepare',
            return_value='/venv/bin/python')).mock
        self.scenario = self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.run_scenario',
            return_value=0)).mock
        self.useFixture(fixtures.EnvironmentVariable('NOVA_XLOUD_PATCHES'))

    def test_the_newest_release_is_the_default(self):
        code, _, _ = self._run('demo')
        self.assertEqual(0, code)
        newest = releases.RELEASES[-1]
        self.prepare.assert_called_once_with(newest, None, self.cache, None,
                                             report=mock.ANY)
        self.scenario.assert_called_once_with('/venv/bin/python', newest,
                                              False)

    def test_options_reach_the_environment_and_the_scenario(self):
        code, _, _ = self._run('demo', '2025.1', '--venv', '/v',
                               '--source', '/src', '--full-xml')
        self.assertEqual(0, code)
        release = releases.get('2025.1')
        self.prepare.assert_called_once_with(release, '/v', self.cache,
                                             '/src', report=mock.ANY)
        self.scenario.assert_called_once_with('/venv/bin/python', release,
                                              True)
        # The demo's own nova-xloud processes read the same series.
        self.assertEqual(self.patches_dir, os.environ['NOVA_XLOUD_PATCHES'])

    def test_a_failed_scenario_fails_the_command(self):
        self.scenario.return_value = 1
        code, _, err = self._run('demo')
        self.assertEqual(1, code)
        self.assertIn('nova-xloud demo: error: the demo failed (exit status'
                      ' 1)', err)

    def test_unknown_release_is_a_usage_error(self):
        code, _, err = self._run('demo', '2023.2')
        self.assertEqual(2, code)
        self.assertIn("unknown release '2023.2'", err)
        self.prepare.assert_not_called()
