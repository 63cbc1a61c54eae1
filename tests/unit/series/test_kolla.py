"""export-kolla checked the way Kolla applies it, on a pip-installed Nova."""

import os
import shutil
import subprocess
import sys

import fixtures
import testtools

from nova_xloud import releases
from nova_xloud.series import kolla
from nova_xloud.series import sdist
from nova_xloud.series import series
from nova_xloud.series import target as target_mod
from tests.unit.series import fakes

# The release of the tox environment: every release's export is checked.
RELEASE = releases.get(os.environ.get('XLOUD_RELEASE', '2024.1'))
PYTHON = '%d.%d' % sys.version_info[:2]


def _quiet(message):
    pass


def _nova_files(site_packages):
    files = fakes.snapshot(os.path.join(site_packages, 'nova'))
    files.pop(target_mod.STAMP_NAME, None)
    return {path: data for path, (data, mode) in files.items()
            if '__pycache__' not in path}


class KollaLayoutTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        venv = os.path.join(self.root, kolla.DEFAULT_VENV.strip('/'))
        subprocess.run([sys.executable, '-m', 'venv', venv], check=True)
        archive = sdist.download(RELEASE, sdist.default_cache_dir(),
                                 report=_quiet)
        subprocess.run([os.path.join(venv, 'bin', 'python'), '-m', 'pip',
                        'install', '--quiet', '--no-deps',
                        '--disable-pip-version-check', archive],
                       check=True, capture_output=True)
        self.site = os.path.join(self.root, kolla.site_packages(
            kolla.DEFAULT_VENV, PYTHON))
        self.assertTrue(os.path.isdir(os.path.join(self.site, 'nova')))

    def _apply_as_kolla_does(self, patches_path):
        # Kolla copies <patches_path>/<image>/ to /patches and, from /,
        # applies each series entry with patch -p0 --fuzz=0.
        directory = os.path.join(patches_path, kolla.IMAGE)
        with open(os.path.join(directory, 'series')) as handle:
            names = [line.strip() for line in handle
                     if line.strip() and not line.startswith('#')]
        for name in names:
            with open(os.path.join(directory, name), 'rb') as handle:
                subprocess.run(['patch', '-p0', '--fuzz=0',
                                '--ignore-whitespace'],
                               stdin=handle, cwd=self.root, check=True,
                               capture_output=True)
        return names

    def test_kolla_application_equals_nova_xloud_apply(self):
        patches = series.load(RELEASE)
        by_tool = os.path.join(self.useFixture(fixtures.TempDir()).path,
                               'site-packages')
        shutil.copytree(self.site, by_tool, symlinks=True)
        series.apply(RELEASE, target_mod.find(by_tool), patches,
                     report=_quiet)
        pristine = _nova_files(self.site)

        patches_path = self.useFixture(fixtures.TempDir()).path
        kolla.export(RELEASE, patches, patches_path, PYTHON, report=_quiet)
        names = self._apply_as_kolla_does(patches_path)

        self.assertEqual([kolla.NAME_PREFIX + p.name for p in patches], names)
        patched = _nova_files(self.site)
        self.assertNotEqual(pristine, patched)
        self.assertEqual(_nova_files(by_tool), patched)
        # No stamp, no version label: status finds the series in the files.
        state = series.status(target_mod.find(self.site), patches)
        self.assertEqual(('patch', True, [p.name for p in patches], None),
                         (state['applied_by'], state['applied'],
                          state['patches'], state['stamp']))


class ToKollaTestCase(testtools.TestCase):

    def test_paths_are_image_paths_and_git_headers_are_gone(self):
        text = kolla.to_kolla(fakes.PATCH_CONFIG, 'var/lib/kolla/venv/lib/'
                              'python3.12/site-packages')
        self.assertIn('\n--- var/lib/kolla/venv/lib/python3.12/site-packages/'
                      'nova/virt/config.py\n', text)
        self.assertIn('\n--- /dev/null\n+++ var/lib/kolla/venv/lib/'
                      'python3.12/site-packages/nova/virt/hooks.py\n', text)
        self.assertNotIn('diff --git', text)
        self.assertNotIn('new file mode', text)
        self.assertIn('\nSubject: virt: change line ten', text)

    def test_bad_python_and_relative_venv_are_usage_errors(self):
        self.assertRaises(kolla.errors.UsageError, kolla.site_packages,
                          '/var/lib/kolla/venv', 'python3')
        self.assertRaises(kolla.errors.UsageError, kolla.site_packages,
                          'var/lib/kolla/venv', '3.12')
