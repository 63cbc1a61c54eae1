"""The project's own series on the real upstream sdist.

The release is the one the tox environment tests ($XLOUD_RELEASE,
2024.1 by default), so every release's series is checked on its sdist.

The sdist is downloaded once into the nova-xloud cache (as the tool does
for operators) and checked against the registry's sha256.
"""

import os
import tempfile
import zipfile

import fixtures
import testtools

from nova_xloud import releases
from nova_xloud.series import sdist
from nova_xloud.series import series
from nova_xloud.series import target as target_mod
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
