import os
import subprocess

import fixtures
import testtools

from nova_xloud.cmd import series as cli
from nova_xloud.series import gitflow
from tests.unit.series import fakes


def _git(tree, *args):
    return subprocess.run(
        ['git', '-C', tree, '-c', 'user.name=Dev', '-c',
         'user.email=dev@example.org'] + list(args),
        check=True, capture_output=True, text=True).stdout


class WorktreeExportTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.patches_dir = self.useFixture(fixtures.TempDir()).path
        self.cache = self.useFixture(fixtures.TempDir()).path
        self.work = self.useFixture(fixtures.TempDir()).path
        upstream = os.path.join(self.work, 'upstream')
        fakes.make_nova_tree(upstream)
        self.release = fakes.make_sdist_release(self.cache, upstream)
        self.useFixture(fixtures.MockPatch('nova_xloud.releases.RELEASES',
                                           (self.release,)))
        self.series_dir = fakes.make_series(self.patches_dir)
        self.tree = os.path.join(self.work, 'wt')
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', open(os.devnull,
                                                                'w')))

    def _cli(self, *argv):
        return cli.main(['--patches-dir', self.patches_dir,
                         '--cache-dir', self.cache] + list(argv))

    def _export_to_a_stable_series(self):
        # The hand-written fakes are not in export form: the first export
        # writes them as export writes everything.
        self.assertEqual(0, self._cli('worktree', '2024.1', self.tree))
        self.assertEqual(0, self._cli('export', self.tree, '2024.1'))
        return fakes.snapshot(self.series_dir)

    def test_worktree_has_the_import_and_one_commit_a_patch(self):
        self.assertEqual(0, self._cli('worktree', '2024.1', self.tree))
        subjects = _git(self.tree, 'log', '--format=%s').splitlines()
        self.assertEqual(['api: capitalise d',
                          'virt: change line ten and add a hook module',
                          'Import nova 29.4.0'], subjects)
        self.assertEqual('', _git(self.tree, 'status', '--porcelain'))

    def test_export_of_an_unchanged_worktree_changes_nothing(self):
        exported = self._export_to_a_stable_series()
        tree2 = os.path.join(self.work, 'wt2')
        self.assertEqual(0, self._cli('worktree', '2024.1', tree2))
        self.assertEqual(0, self._cli('export', tree2, '2024.1'))
        self.assertEqual(exported, fakes.snapshot(self.series_dir))

    def test_export_keeps_names_and_has_no_dates_or_hashes(self):
        self._export_to_a_stable_series()
        names = sorted(os.listdir(self.series_dir))
        self.assertEqual(['api-capitalise-d.patch', 'series',
                          'virt-change-line-ten.patch'], names)
        with open(os.path.join(self.series_dir,
                               'virt-change-line-ten.patch')) as handle:
            text = handle.read()
        self.assertNotIn('\nDate: ', text)
        self.assertNotIn('\nindex ', text)
        self.assertTrue(text.startswith('From 0000000000000000000000000000'))
        self.assertIn('\nnew file mode 100644\n', text)
        self.assertIn('\nOrigin: vendor\n', text)
        self.assertFalse(text.rstrip().endswith(('2.39.5', '--')))

    def test_a_new_commit_becomes_a_new_patch_at_the_end(self):
        self._export_to_a_stable_series()
        fakes.write(self.tree, 'nova/api.py', 'z\n', mode='a')
        _git(self.tree, 'commit', '-qam', 'api: append z')
        self.assertEqual(0, self._cli('export', self.tree, '2024.1'))
        with open(os.path.join(self.series_dir, 'series')) as handle:
            entries = [line.strip() for line in handle
                       if not line.startswith('#')]
        self.assertEqual(['virt-change-line-ten.patch',
                          'api-capitalise-d.patch', 'api-append-z.patch'],
                         entries)

    def test_disabled_patches_stay_in_the_series(self):
        self._export_to_a_stable_series()
        series_path = os.path.join(self.series_dir, 'series')
        with open(series_path) as handle:
            text = handle.read()
        with open(series_path, 'w') as handle:
            handle.write(text.replace('api-capitalise-d.patch',
                                      '# api-capitalise-d.patch'))
        tree2 = os.path.join(self.work, 'wt2')
        self.assertEqual(0, self._cli('worktree', '2024.1', tree2))
        self.assertEqual(0, self._cli('export', tree2, '2024.1'))
        with open(series_path) as handle:
            text = handle.read()
        self.assertIn('\n# api-capitalise-d.patch\n', text)
        self.assertTrue(os.path.exists(
            os.path.join(self.series_dir, 'api-capitalise-d.patch')))

    def test_worktree_refuses_a_non_empty_directory(self):
        os.makedirs(self.tree)
        fakes.write(self.tree, 'keep.txt', 'mine')
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', open(os.devnull,
                                                                'w')))
        self.assertEqual(2, self._cli('worktree', '2024.1', self.tree))
        self.assertEqual(['keep.txt'], os.listdir(self.tree))

    def test_worktree_with_a_broken_patch_leaves_no_directory(self):
        fakes.write(self.series_dir, 'api-capitalise-d.patch',
                    fakes.PATCH_API.replace(' c\n-d', ' C\n-d'))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', open(os.devnull,
                                                                'w')))
        self.assertEqual(1, self._cli('worktree', '2024.1', self.tree))
        self.assertFalse(os.path.exists(self.tree))

    def test_export_refuses_a_directory_that_is_not_a_worktree(self):
        os.makedirs(self.tree)
        _git(self.tree, 'init', '-q')
        fakes.write(self.tree, 'f', 'x')
        _git(self.tree, 'add', 'f')
        _git(self.tree, 'commit', '-qm', 'something else')
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', open(os.devnull,
                                                                'w')))
        self.assertEqual(1, self._cli('export', self.tree, '2024.1'))

    def test_slug(self):
        self.assertEqual(
            'libvirt-carry-current-vcpus-in-the-guest-config.patch',
            gitflow.slug('libvirt: carry current vCPUs in the guest config'))
