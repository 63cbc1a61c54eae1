"""The project's own series on the real upstream sdist.

The release is the one the tox environment tests ($XLOUD_RELEASE,
2024.1 by default), so every release's series is checked on its sdist.

The sdist is downloaded once into the nova-xloud cache (as the tool does
for operators) and checked against the registry's sha256.
"""

import io
import os
import tempfile
import zipfile

import fixtures
import testtools

from nova_xloud.cmd import series as cli
from nova_xloud import releases
from nova_xloud.series import sdist
from nova_xloud.series import series
from nova_xloud.series import target as target_mod
from tests import readme
from tests.unit.series import fakes

RELEASE = releases.get(os.environ.get('XLOUD_RELEASE', '2024.1'))


def _quiet(message):
    pass


class RealSdistTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        archive = sdist.download(RELEASE, sdist.default_cache_dir(),
                                 report=_quiet)
        work = self.useFixture(fixtures.TempDir()).path
        self.tree = sdist.unpack_fresh(RELEASE, archive, work)
        self.patches = series.load(RELEASE)

    def test_series_applies_reapplies_and_reverses_to_identical_bytes(self):
        self.assertNotEqual([], self.patches)
        before = fakes.snapshot(self.tree)
        target = target_mod.find(self.tree)
        self.assertEqual(RELEASE.nova_version, target.nova_version)
        series.apply(RELEASE, target, self.patches, report=_quiet)
        after = fakes.snapshot(self.tree)
        touched = set(target.read_stamp()['files'])
        self.assertEqual(
            touched | {'nova/' + target_mod.STAMP_NAME},
            {path for path in set(before) | set(after)
             if before.get(path) != after.get(path)})
        series.apply(RELEASE, target, self.patches, report=_quiet)
        self.assertEqual(after, fakes.snapshot(self.tree))
        series.reverse(RELEASE, target, report=_quiet)
        self.assertEqual(before, fakes.snapshot(self.tree))

    def test_built_wheel_has_the_local_version_and_the_patched_files(self):
        target = target_mod.find(self.tree)
        series.apply(RELEASE, target, self.patches, report=_quiet)
        with tempfile.TemporaryDirectory() as out:
            wheel = sdist.build_wheel(RELEASE, self.tree, out, report=_quiet)
            self.assertEqual('nova-%s-py3-none-any.whl'
                             % RELEASE.local_version,
                             os.path.basename(wheel))
            with zipfile.ZipFile(wheel) as archive:
                for path in target.read_stamp()['files']:
                    with open(os.path.join(self.tree, path), 'rb') as f:
                        self.assertEqual(f.read(), archive.read(path), path)
                site = os.path.join(out, 'site')
                archive.extractall(site)
            self._assert_status_as_readme_shows(site)

    def _assert_status_as_readme_shows(self, site):
        # The wheel's files as pip installs them: no stamp, a version
        # with our label; status finds the series in the files.
        installed = target_mod.find(site)
        self.assertIsNone(installed.read_stamp())
        self.assertEqual(RELEASE.local_version, installed.nova_version)
        state = series.status(installed, self.patches)
        self.assertEqual(('build', True, [p.name for p in self.patches]),
                         (state['applied_by'], state['applied'],
                          state['patches']))
        out = self.useFixture(fixtures.MonkeyPatch(
            'sys.stdout', io.StringIO())).new_value
        self.assertEqual(0, cli.main(['status', site]))
        # README shows 2024.1's.
        shown = '\n'.join(readme.output_of('nova-xloud status /tmp/nova-site'))
        for old, new in (('/tmp/nova-site', site),
                         ('29.4.0+xloud.1', RELEASE.local_version),
                         ('+xloud.1', '+xloud.%d' % RELEASE.series_revision),
                         ('2024.1', RELEASE.name)):
            shown = shown.replace(old, new)
        self.assertEqual(shown.splitlines(), out.getvalue().splitlines())
