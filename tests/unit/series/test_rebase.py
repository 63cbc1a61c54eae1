import os
import subprocess

import fixtures
import testtools

from nova_xloud.cmd import series as cli
from tests.unit.series import fakes


class RebaseTestCase(testtools.TestCase):
    """2024.1's fake series carried onto a fake 2025.1 sdist."""

    def setUp(self):
        super().setUp()
        self.patches_dir = self.useFixture(fixtures.TempDir()).path
        self.cache = self.useFixture(fixtures.TempDir()).path
        self.work = self.useFixture(fixtures.TempDir()).path
        old = fakes.make_nova_tree(os.path.join(self.work, 'old'))
        new = fakes.make_nova_tree(os.path.join(self.work, 'new'),
                                   version='31.3.1')
        # Upstream moved the code the config patch hooks (clean merge) and
        # rewrote the line the api patch changes (conflict).
        fakes.write(new, 'nova/virt/config.py', 'header\n' + fakes.CONFIG_PY)
        fakes.write(new, 'nova/api.py', 'a\nb\nc\nd2\ne\nf\ng\n')
        releases = (fakes.make_sdist_release(self.cache, old),
                    fakes.make_sdist_release(self.cache, new, '31.3.1'))
        self.useFixture(fixtures.MockPatch('nova_xloud.releases.RELEASES',
                                           releases))
        fakes.make_series(self.patches_dir)
        self.tree = os.path.join(self.work, 'rebased')
        self.useFixture(fixtures.MonkeyPatch(
            'sys.stdout', open(os.path.join(self.work, 'out'), 'w+')))
        self.useFixture(fixtures.MonkeyPatch(
            'sys.stderr', open(os.path.join(self.work, 'err'), 'w+')))

    def _cli(self, *argv):
        return cli.main(['--patches-dir', self.patches_dir,
                         '--cache-dir', self.cache] + list(argv))

    def _git(self, *args):
        return subprocess.run(['git', '-C', self.tree] + list(args),
                              check=True, capture_output=True,
                              text=True).stdout

    def _output(self, name):
        with open(os.path.join(self.work, name)) as handle:
            return handle.read()

    def test_rebase_lists_clean_and_conflicting_patches(self):
        self.assertEqual(1, self._cli('rebase', '2024.1', '2025.1',
                                      self.tree))
        out = self._output('out')
        self.assertIn('clean     virt: change line ten', out)
        self.assertIn('CONFLICT  api: capitalise d (nova/api.py)', out)
        self.assertIn('api: capitalise d', self._output('err'))
        self.assertEqual(['api: capitalise d',
                          'virt: change line ten and add a hook module',
                          'Import nova 31.3.1'],
                         self._git('log', '--format=%s').splitlines())
        with open(os.path.join(self.tree, 'nova/virt/config.py')) as f:
            self.assertEqual('header\n' + fakes.CONFIG_PY.replace(
                'line 10\n', 'line ten\n'), f.read())

    def test_export_refuses_conflict_markers_and_writes_nothing(self):
        self._cli('rebase', '2024.1', '2025.1', self.tree)
        before = fakes.snapshot(self.patches_dir)
        self.assertEqual(1, self._cli('export', self.tree, '2025.1'))
        self.assertIn('api-capitalise-d.patch still adds conflict markers',
                      self._output('err'))
        self.assertEqual(before, fakes.snapshot(self.patches_dir))

    def test_resolved_rebase_exports_the_new_release_series(self):
        self._cli('rebase', '2024.1', '2025.1', self.tree)
        fakes.write(self.tree, 'nova/api.py', 'a\nb\nc\nD2\ne\nf\ng\n')
        self._git('-c', 'user.name=Dev', '-c', 'user.email=d@example.org',
                  'commit', '-qa', '--amend', '--no-edit')
        self.assertEqual(0, self._cli('export', self.tree, '2025.1'))
        series = os.path.join(self.patches_dir, '2025.1', 'series')
        with open(series) as handle:
            self.assertIn('nova 31.3.1 (2025.1)', handle.read())
        with open(os.path.join(self.patches_dir, '2025.1',
                               'api-capitalise-d.patch')) as handle:
            self.assertIn('\n-d2\n+D2\n', handle.read())
