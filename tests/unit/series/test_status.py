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

"""``nova-xloud status`` finds the series however it got into a Nova."""

import io
import json
import os
import subprocess

import fixtures
import testtools

from nova_xloud.cmd import series as cli
from nova_xloud import releases
from nova_xloud.series import engine
from nova_xloud.series import kolla
from nova_xloud.series import series
from tests.unit.series import fakes

NAMES = ['virt-change-line-ten.patch', 'api-capitalise-d.patch']


class StatusTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.patches_dir = os.path.join(self.tmp, 'patches')
        fakes.make_series(self.patches_dir)

    def _run(self, *argv):
        out = self.useFixture(fixtures.MonkeyPatch('sys.stdout',
                                                   io.StringIO())).new_value
        code = cli.main(['--patches-dir', self.patches_dir,
                         '--cache-dir', self.tmp] + list(argv))
        self.assertEqual(0, code)
        return out.getvalue()

    def _status(self, root):
        text = self._run('status', root)
        state = json.loads(self._run('status', '--format', 'json', root))
        return text, state

    def _patch_without_stamp(self, root, patches=None):
        """Apply the series as a wheel or patch(1) leaves it: no stamp."""
        tree = engine.PendingTree(root)
        loaded = series.load(releases.get('2024.1'), self.patches_dir)
        engine.apply_patches(tree, [p.parse() for p in loaded
                                    if patches is None or p.name in patches])
        tree.write()

    def test_applied_by_apply(self):
        root = fakes.make_nova_tree(os.path.join(self.tmp, 'nova'))
        self._run('apply', '2024.1', root)
        text, state = self._status(root)
        self.assertIn('series:        2024.1, applied (2 patches): applied'
                      ' by nova-xloud apply (stamp %s)'
                      % os.path.join(root, 'nova', '.nova-xloud-series.json'),
                      text)
        for name in NAMES:
            self.assertIn('  present: %s\n' % name, text)
        self.assertIn('changed since: nothing', text)
        self.assertTrue(state['applied'])
        self.assertEqual('apply', state['applied_by'])
        self.assertEqual(NAMES, state['patches'])

    def test_built_by_build(self):
        # What "nova-xloud build" installs: the patched files, a version
        # with our local label, and no stamp.
        root = fakes.make_nova_tree(os.path.join(self.tmp, 'site'),
                                    version='29.4.0+xloud.1',
                                    layout='site-packages')
        self._patch_without_stamp(root)
        text, state = self._status(root)
        self.assertIn('series:        2024.1, applied (2 patches): built in'
                      ' by nova-xloud build (version label +xloud.1)', text)
        self.assertNotIn('changed since', text)
        self.assertEqual(('build', True, NAMES), (
            state['applied_by'], state['applied'], state['patches']))

    def test_a_version_label_without_the_code_is_not_the_series(self):
        root = fakes.make_nova_tree(os.path.join(self.tmp, 'site'),
                                    version='29.4.0+xloud.1',
                                    layout='site-packages')
        text, state = self._status(root)
        self.assertIn('series:        not applied', text)
        self.assertEqual((None, False, []), (
            state['applied_by'], state['applied'], state['patches']))

    def test_applied_by_kollas_patch_p0(self):
        image = os.path.join(self.tmp, 'image')
        site = os.path.join(image, kolla.site_packages(kolla.DEFAULT_VENV,
                                                       '3.12'))
        fakes.make_nova_tree(site, layout='site-packages')
        self._run('export-kolla', '2024.1', os.path.join(self.tmp, 'kolla'),
                  '--python', '3.12')
        directory = os.path.join(self.tmp, 'kolla', kolla.IMAGE)
        for name in NAMES:
            with open(os.path.join(directory, kolla.NAME_PREFIX + name),
                      'rb') as handle:
                subprocess.run(['patch', '-p0', '--fuzz=0'], stdin=handle,
                               cwd=image, check=True, capture_output=True)
        text, state = self._status(site)
        self.assertIn("series:        2024.1, applied (2 patches): patched"
                      " in without nova-xloud (Kolla's patch -p0 or by"
                      " hand)", text)
        self.assertEqual(('patch', True, NAMES), (
            state['applied_by'], state['applied'], state['patches']))

    def test_a_part_of_the_series_is_named(self):
        root = fakes.make_nova_tree(os.path.join(self.tmp, 'nova'))
        self._patch_without_stamp(root, patches=['api-capitalise-d.patch'])
        text, state = self._status(root)
        self.assertIn('series:        2024.1, PARTLY applied (1 of 2'
                      ' patches)', text)
        self.assertIn('  present: api-capitalise-d.patch\n', text)
        self.assertIn('  MISSING: virt-change-line-ten.patch\n', text)
        self.assertFalse(state['applied'])
        self.assertEqual(['virt-change-line-ten.patch'],
                         state['missing_patches'])

    def test_a_stamp_whose_code_was_taken_out_is_not_applied(self):
        root = fakes.make_nova_tree(os.path.join(self.tmp, 'nova'))
        self._run('apply', '2024.1', root)
        fakes.write(root, 'nova/api.py', fakes.API_PY)
        text, state = self._status(root)
        self.assertIn('PARTLY applied (1 of 2 patches): applied by'
                      ' nova-xloud apply', text)
        self.assertIn('  MISSING: api-capitalise-d.patch\n', text)
        self.assertIn('changed since: nova/api.py', text)
        self.assertFalse(state['applied'])

    def test_a_pristine_tree(self):
        root = fakes.make_nova_tree(os.path.join(self.tmp, 'nova'))
        text, state = self._status(root)
        self.assertIn('series:        not applied', text)
        self.assertEqual(NAMES, state['missing_patches'])
