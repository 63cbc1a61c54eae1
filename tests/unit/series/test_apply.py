import json
import os

import fixtures
import testtools

from nova_xloud import releases
from nova_xloud.series import errors
from nova_xloud.series import series
from nova_xloud.series import target as target_mod
from tests.unit.series import fakes

RELEASE = releases.get('2024.1')


class ApplyTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.patches_dir = self.useFixture(fixtures.TempDir()).path
        fakes.make_series(self.patches_dir)
        self.messages = []

    def _tree(self, layout='sdist', version='29.4.0'):
        fakes.make_nova_tree(self.root, version=version, layout=layout)
        return target_mod.find(self.root)

    def _apply(self, target, **kwargs):
        series.apply(RELEASE, target,
                     series.load(RELEASE, self.patches_dir),
                     report=self.messages.append, **kwargs)

    def _read(self, path):
        with open(os.path.join(self.root, path)) as handle:
            return handle.read()

    def test_apply_changes_every_file_of_the_series(self):
        self._apply(self._tree())
        self.assertIn('line ten\n', self._read('nova/virt/config.py'))
        self.assertNotIn('line 10\n', self._read('nova/virt/config.py'))
        self.assertEqual('a\nb\nc\nD\ne\nf\ng\n', self._read('nova/api.py'))
        self.assertEqual('def hook():\n    pass\n',
                         self._read('nova/virt/hooks.py'))

    def test_apply_records_a_stamp_inside_nova(self):
        target = self._tree()
        self._apply(target)
        stamp = target.read_stamp()
        self.assertEqual('2024.1', stamp['release'])
        self.assertEqual('29.4.0', stamp['nova_version'])
        self.assertEqual(
            ['virt-change-line-ten.patch', 'api-capitalise-d.patch'],
            [p['name'] for p in stamp['patches']])
        expected = series.load(RELEASE, self.patches_dir)
        self.assertEqual([p.sha256 for p in expected],
                         [p['sha256'] for p in stamp['patches']])
        self.assertEqual(
            sorted(['nova/api.py', 'nova/virt/config.py',
                    'nova/virt/hooks.py']), sorted(stamp['files']))
        self.assertTrue(target.stamp_path.startswith(
            os.path.join(self.root, 'nova') + os.sep))

    def test_second_apply_says_already_applied_and_changes_nothing(self):
        target = self._tree()
        self._apply(target)
        before = fakes.snapshot(self.root)
        self._apply(target)
        self.assertEqual(before, fakes.snapshot(self.root))
        self.assertIn('already applied', self.messages[-1])

    def test_reverse_restores_the_tree_byte_for_byte(self):
        target = self._tree()
        os.chmod(os.path.join(self.root, 'nova/api.py'), 0o755)
        before = fakes.snapshot(self.root)
        self._apply(target)
        self.assertNotEqual(before, fakes.snapshot(self.root))
        series.reverse(RELEASE, target, report=self.messages.append)
        self.assertEqual(before, fakes.snapshot(self.root))

    def test_reverse_uses_the_recorded_patches_not_the_current_ones(self):
        target = self._tree()
        before = fakes.snapshot(self.root)
        self._apply(target)
        # An upgraded nova-xloud may ship another series.
        fakes.make_series(self.patches_dir, patches=[
            ('api-capitalise-d.patch', fakes.PATCH_API)])
        series.reverse(RELEASE, target, report=self.messages.append)
        self.assertEqual(before, fakes.snapshot(self.root))

    def test_reverse_of_an_unpatched_tree_is_a_no_op(self):
        target = self._tree()
        before = fakes.snapshot(self.root)
        series.reverse(RELEASE, target, report=self.messages.append)
        self.assertEqual(before, fakes.snapshot(self.root))
        self.assertIn('nothing to reverse', self.messages[-1])

    def test_dry_run_checks_but_changes_nothing(self):
        target = self._tree()
        before = fakes.snapshot(self.root)
        self._apply(target, dry_run=True)
        self.assertEqual(before, fakes.snapshot(self.root))
        self.assertIn('apply cleanly', self.messages[-1])
        self.assertIn('nova/virt/hooks.py', self.messages[-1])

    def test_conflict_names_patch_file_and_hunk_and_touches_nothing(self):
        target = self._tree()
        # The second patch conflicts: the first must not be left applied.
        fakes.write(self.root, 'nova/api.py', 'a\nb\nc\nX\ne\nf\ng\n')
        before = fakes.snapshot(self.root)
        exc = self.assertRaises(errors.ConflictError, self._apply, target)
        self.assertIn('api-capitalise-d.patch', str(exc))
        self.assertIn('nova/api.py', str(exc))
        self.assertIn('hunk #1 (@@ -2,5 +2,5 @@)', str(exc))
        self.assertEqual(1, exc.exit_code)
        self.assertEqual(before, fakes.snapshot(self.root))
        self.assertIsNone(target.read_stamp())

    def test_changed_context_is_a_conflict_not_fuzz(self):
        target = self._tree()
        # Only the outermost context line differs: patch's default fuzz
        # would accept this; the series must not.
        fakes.write(self.root, 'nova/virt/config.py',
                    fakes.CONFIG_PY.replace('line 13\n', 'line 13 edited\n'))
        before = fakes.snapshot(self.root)
        exc = self.assertRaises(errors.ConflictError, self._apply, target)
        self.assertIn('nova/virt/config.py', str(exc))
        self.assertEqual(before, fakes.snapshot(self.root))

    def test_moved_context_applies_at_its_offset(self):
        target = self._tree()
        fakes.write(self.root, 'nova/virt/config.py',
                    'new first line\n' + fakes.CONFIG_PY)
        self._apply(target)
        lines = self._read('nova/virt/config.py').splitlines()
        self.assertEqual('line ten', lines[10])

    def test_created_file_that_exists_is_a_conflict(self):
        target = self._tree()
        fakes.write(self.root, 'nova/virt/hooks.py', 'mine\n')
        before = fakes.snapshot(self.root)
        exc = self.assertRaises(errors.ConflictError, self._apply, target)
        self.assertIn('nova/virt/hooks.py already exists', str(exc))
        self.assertEqual(before, fakes.snapshot(self.root))

    def test_installed_package_layout(self):
        target = self._tree(layout='site-packages')
        self.assertEqual('29.4.0', target.nova_version)
        self.assertEqual('nova-29.4.0.dist-info/METADATA',
                         target.version_source)
        before = fakes.snapshot(self.root)
        self._apply(target)
        self.assertEqual('a\nb\nc\nD\ne\nf\ng\n', self._read('nova/api.py'))
        series.reverse(RELEASE, target, report=self.messages.append)
        self.assertEqual(before, fakes.snapshot(self.root))

    def test_other_release_is_refused_naming_both_versions(self):
        target = self._tree(version='31.3.1')
        before = fakes.snapshot(self.root)
        exc = self.assertRaises(errors.SeriesError, self._apply, target)
        self.assertIn('nova 31.3.1 (2025.1)', str(exc))
        self.assertIn('2024.1 series is for nova 29.4.0', str(exc))
        self.assertEqual(before, fakes.snapshot(self.root))

    def test_another_applied_series_must_be_reversed_first(self):
        target = self._tree()
        self._apply(target)
        fakes.make_series(self.patches_dir, patches=[
            ('api-capitalise-d.patch', fakes.PATCH_API)])
        before = fakes.snapshot(self.root)
        exc = self.assertRaises(errors.SeriesError, self._apply, target)
        self.assertIn('reverse it first', str(exc))
        self.assertEqual(before, fakes.snapshot(self.root))

    def test_status_lists_files_changed_since_the_series_was_applied(self):
        target = self._tree()
        self._apply(target)
        fakes.write(self.root, 'nova/api.py', 'local edit\n', mode='a')
        state = series.status(target)
        self.assertTrue(state['applied'])
        self.assertEqual('2024.1', state['release'])
        self.assertEqual(['nova/api.py'], state['changed_since'])

    def test_status_of_a_pristine_tree(self):
        state = series.status(self._tree())
        self.assertFalse(state['applied'])
        self.assertEqual([], state['changed_since'])

    def test_a_broken_stamp_is_reported(self):
        target = self._tree()
        fakes.write(self.root, 'nova/' + target_mod.STAMP_NAME, '{oops')
        exc = self.assertRaises(errors.SeriesError, target.read_stamp)
        self.assertIn(target_mod.STAMP_NAME, str(exc))

    def test_stamp_is_stable_json(self):
        target = self._tree()
        self._apply(target)
        with open(target.stamp_path) as handle:
            text = handle.read()
        self.assertEqual(json.dumps(json.loads(text), indent=2,
                                    sort_keys=True) + '\n', text)


class TargetTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path

    def test_directory_without_nova_is_a_usage_error(self):
        exc = self.assertRaises(errors.UsageError, target_mod.find,
                                self.root)
        self.assertIn('holds no nova/ package', str(exc))
        self.assertEqual(2, exc.exit_code)

    def test_missing_directory_is_a_usage_error(self):
        exc = self.assertRaises(errors.UsageError, target_mod.find,
                                os.path.join(self.root, 'absent'))
        self.assertIn('is not a directory', str(exc))

    def test_unknown_version_is_reported(self):
        fakes.write(self.root, 'nova/__init__.py', '')
        exc = self.assertRaises(errors.SeriesError, target_mod.find,
                                self.root)
        self.assertIn('cannot tell which Nova version', str(exc))

    def test_metadata_of_another_project_is_ignored(self):
        fakes.write(self.root, 'nova/__init__.py', '')
        fakes.write(self.root, 'PKG-INFO', 'Name: other\nVersion: 29.4.0\n')
        self.assertRaises(errors.SeriesError, target_mod.find, self.root)
