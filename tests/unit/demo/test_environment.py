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

import json
import os
import stat
import subprocess
import sys
from unittest import mock

import fixtures
import testtools

from nova_xloud.demo import environment
from nova_xloud import releases
from nova_xloud.series import errors
from nova_xloud.series import target as target_mod

NEWEST = releases.newest()


def installed_release():
    target = target_mod.find(target_mod.installed_root())
    return releases.for_nova_version(target.nova_version)


class SourceTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def _direct_url(self, url, **info):
        return json.dumps(dict(info, url=url))

    def test_an_editable_checkout_is_installed_editable(self):
        self.assertEqual(['-e', self.tmp], environment._from_direct_url(
            self._direct_url('file://' + self.tmp,
                             dir_info={'editable': True})))

    def test_a_local_wheel_is_installed_from_its_path(self):
        wheel = os.path.join(self.tmp, 'nova_xloud-1.0-py3-none-any.whl')
        open(wheel, 'w').close()
        self.assertEqual([wheel], environment._from_direct_url(
            self._direct_url('file://' + wheel, archive_info={})))

    def test_a_vanished_path_or_a_remote_url_gives_nothing(self):
        self.assertIsNone(environment._from_direct_url(self._direct_url(
            'file://' + os.path.join(self.tmp, 'gone'))))
        self.assertIsNone(environment._from_direct_url(self._direct_url(
            'https://example.org/nova_xloud-1.0.tar.gz')))

    def _installed(self, direct_url):
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment._checkout_root', return_value=None))
        return self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.own_install',
            return_value={'version': '1.2.3',
                          'direct_url': direct_url})).mock

    def test_an_index_install_is_asked_of_the_same_index(self):
        own_install = self._installed(None)
        self.assertEqual(['nova-xloud==1.2.3'], environment.own_source())
        own_install.assert_called_once_with()

    def test_the_install_is_read_past_a_clones_egg_info_in_the_cwd(self):
        # As after "pip install ." in a clone, run from that clone: the
        # egg-info there has no direct_url.json; the install has one.
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment._checkout_root', return_value=None))
        _run_from_a_clone_with_egg_info(self, version='9.9.9')
        self.assertNotEqual(['nova-xloud==9.9.9'], environment.own_source())

    def test_an_install_from_a_vanished_wheel_is_asked_of_the_index(self):
        self._installed(self._direct_url(
            'file://' + os.path.join(self.tmp, 'gone.whl'),
            archive_info={}))
        self.assertEqual(['nova-xloud==1.2.3'], environment.own_source())

    def test_an_install_from_a_local_wheel_reuses_it(self):
        wheel = os.path.join(self.tmp, 'nova_xloud-1.2.3-py3-none-any.whl')
        open(wheel, 'w').close()
        self._installed(self._direct_url('file://' + wheel,
                                         archive_info={}))
        self.assertEqual([wheel], environment.own_source())

    def test_code_running_from_a_source_tree_installs_that_tree(self):
        # As here: tox's editable install runs the code of the checkout.
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(environment.__file__))))
        self.assertTrue(os.path.isfile(os.path.join(root, 'setup.cfg')))
        self.assertEqual(['-e', root], environment.own_source())


class ProbeTestCase(testtools.TestCase):

    def _fake_python(self, script):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'python')
        with open(path, 'w') as handle:
            handle.write('#!/bin/sh\n' + script)
        os.chmod(path, stat.S_IRWXU)
        return path

    def test_the_answer_of_the_other_python_is_read(self):
        python = self._fake_python(
            'echo "some warning"\n'
            'echo \'{"nova_xloud": "1.0", "missing": ["placement"]}\'\n')
        self.assertEqual(('1.0', ['placement']),
                         environment.probe(python, NEWEST))

    def test_a_python_without_nova_xloud_is_not_ready(self):
        python = self._fake_python(
            'echo "No module named nova_xloud" >&2\nexit 1\n')
        self.assertEqual(
            (None, ['nova-xloud does not run there (No module named'
                    ' nova_xloud)']),
            environment.probe(python, NEWEST))

    def _clone_with_egg_info(self):
        """A directory like a clone after ``pip install .``."""
        clone = self.useFixture(fixtures.TempDir()).path
        package = os.path.dirname(os.path.abspath(environment.__file__))
        os.symlink(os.path.dirname(package),
                   os.path.join(clone, 'nova_xloud'))
        egg_info = os.path.join(clone, 'nova_xloud.egg-info')
        os.mkdir(egg_info)
        with open(os.path.join(egg_info, 'PKG-INFO'), 'w') as handle:
            handle.write('Metadata-Version: 2.1\nName: nova-xloud\n'
                         'Version: 9.9.9\n')
        return clone

    def _empty_venv(self):
        venv = os.path.join(self.useFixture(fixtures.TempDir()).path, 'v')
        subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                        venv], check=True)
        return environment.venv_python(venv)

    def test_a_clone_in_the_cwd_does_not_count_as_installed(self):
        python = self._empty_venv()
        cwd = os.getcwd()
        self.addCleanup(os.chdir, cwd)
        os.chdir(self._clone_with_egg_info())
        version, missing = environment.probe(python, NEWEST)
        self.assertIsNone(version)
        self.assertEqual(1, len(missing))
        self.assertIn("No module named 'nova_xloud'", missing[0])

    def test_this_environment_can_run_the_demo_of_its_release(self):
        version, missing = environment.probe(sys.executable,
                                             installed_release())
        self.assertEqual([], missing)
        self.assertEqual(environment.own_version(), version)

    def test_this_environment_cannot_run_another_release(self):
        here = installed_release()
        other = [r for r in releases.RELEASES if r is not here][0]
        _, missing = environment.probe(sys.executable, other)
        self.assertEqual(['nova %s is installed, not nova %s'
                          % (here.nova_version, other.nova_version)],
                         missing)


class PrepareTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.cache = self.useFixture(fixtures.TempDir()).path
        self.lines = []
        self.probe = self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.probe')).mock
        self.create = self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.create_venv')).mock
        self.install_xloud = self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.install_nova_xloud')).mock
        self.install_nova = self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.install_nova')).mock
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.own_version', return_value='1.0'))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.own_source',
            return_value=['-e', '/src']))

    def _prepare(self, venv=None, source=None):
        return environment.prepare(NEWEST, venv, self.cache, source,
                                   report=self.lines.append)

    def test_a_ready_environment_is_used_as_it_is(self):
        self.probe.return_value = ('1.0', [])
        self.assertEqual(sys.executable, self._prepare())
        self.probe.assert_called_once_with(sys.executable, NEWEST)
        self.create.assert_not_called()
        self.install_xloud.assert_not_called()
        self.install_nova.assert_not_called()

    def test_otherwise_a_venv_in_the_cache_is_built(self):
        venv = os.path.join(self.cache, 'demo', NEWEST.name)
        python = os.path.join(venv, 'bin', 'python')
        self.probe.side_effect = [('1.0', ['nova is not installed']),
                                  (None, ['nova-xloud does not run there']),
                                  ('1.0', ['nova is not installed']),
                                  ('1.0', [])]
        self.assertEqual(python, self._prepare())
        self.assertEqual([mock.call(sys.executable, NEWEST)] +
                         [mock.call(python, NEWEST)] * 3,
                         self.probe.call_args_list)
        self.create.assert_called_once_with(venv, self.lines.append)
        self.install_xloud.assert_called_once_with(
            venv, ['-e', '/src'], self.lines.append)
        self.install_nova.assert_called_once_with(
            venv, NEWEST, self.cache, self.lines.append)
        self.assertIn('[demo] not in this environment (nova is not'
                      ' installed); using %s' % venv, self.lines)

    def test_a_ready_venv_is_reused(self):
        venv = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.python_runs', return_value=True))
        self.probe.return_value = ('1.0', [])
        self.assertEqual(os.path.join(venv, 'bin', 'python'),
                         self._prepare(venv))
        self.create.assert_not_called()
        self.install_xloud.assert_not_called()
        self.install_nova.assert_not_called()

    def test_another_nova_xloud_version_is_replaced(self):
        venv = os.path.join(self.cache, 'v')
        self.probe.side_effect = [('0.9', []), ('1.0', [])]
        self._prepare(venv, source='/tmp/nova_xloud-1.0.tar.gz')
        self.install_xloud.assert_called_once_with(
            venv, ['/tmp/nova_xloud-1.0.tar.gz'], self.lines.append)
        self.install_nova.assert_not_called()

    def test_a_venv_still_missing_something_is_an_error(self):
        venv = os.path.join(self.cache, 'v')
        self.probe.return_value = ('1.0', ['placement does not import'])
        e = self.assertRaises(errors.SeriesError, self._prepare, venv)
        self.assertEqual('%s still cannot run the demo: placement does not'
                         ' import\nremove it (rm -rf %s) and run the demo'
                         ' again to build it afresh' % (venv, venv), str(e))
        self.install_nova.assert_called_once_with(
            venv, NEWEST, self.cache, self.lines.append)


class CreateVenvTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.run_checked = self.useFixture(fixtures.MockPatch(
            'nova_xloud.series.sdist.run_checked')).mock

    def test_a_new_venv_is_created(self):
        venv = os.path.join(self.useFixture(fixtures.TempDir()).path, 'v')
        lines = []
        environment.create_venv(venv, lines.append)
        self.run_checked.assert_called_once_with(
            [sys.executable, '-m', 'venv', venv], 'creating %s' % venv)
        self.assertEqual(['[demo] creating the virtualenv %s' % venv], lines)

    def test_a_half_built_venv_is_recreated(self):
        # A first run stopped before the venv's Python was in place.
        venv = self.useFixture(fixtures.TempDir()).path
        open(os.path.join(venv, 'pyvenv.cfg'), 'w').close()
        os.mkdir(os.path.join(venv, 'lib'))
        lines = []
        environment.create_venv(venv, lines.append)
        self.run_checked.assert_called_once_with(
            [sys.executable, '-m', 'venv', '--clear', venv],
            'creating %s' % venv)
        self.assertIn('[demo] recreating the virtualenv %s' % venv,
                      lines[0])

    def test_a_directory_that_is_no_venv_is_left_alone(self):
        venv = self.useFixture(fixtures.TempDir()).path
        with open(os.path.join(venv, 'notes.txt'), 'w') as handle:
            handle.write('mine')
        e = self.assertRaises(errors.UsageError, environment.create_venv,
                              venv, print)
        self.assertIn('%s exists but is not a virtualenv' % venv, str(e))
        self.assertEqual(['notes.txt'], os.listdir(venv))

    def test_a_file_is_no_venv_either(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'f')
        with open(path, 'w') as handle:
            handle.write('mine')
        e = self.assertRaises(errors.UsageError, environment.create_venv,
                              path, print)
        self.assertIn('%s exists but is not a virtualenv' % path, str(e))
        with open(path) as handle:
            self.assertEqual('mine', handle.read())


class InstallNovaTestCase(testtools.TestCase):

    def test_the_venvs_nova_xloud_runs_without_its_console_script(self):
        # The console script of a half-built venv may be missing: the
        # module of the venv's own nova-xloud does the install.
        venv = self.useFixture(fixtures.TempDir()).path
        run = self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.run_isolated',
            return_value=mock.Mock(returncode=0))).mock
        environment.install_nova(venv, NEWEST, '/cache', print)
        run.assert_called_once_with(
            os.path.join(venv, 'bin', 'python'),
            ['-m', 'nova_xloud.cmd.series', '--cache-dir', '/cache',
             'install', NEWEST.name, '--with-tests'])

    def test_a_failed_install_says_so(self):
        venv = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.demo.environment.run_isolated',
            return_value=mock.Mock(returncode=3)))
        e = self.assertRaises(errors.SeriesError, environment.install_nova,
                              venv, NEWEST, '/cache', print)
        self.assertIn('exit status 3', str(e))


class RunIsolatedTestCase(testtools.TestCase):

    def test_the_callers_directory_is_not_on_the_path(self):
        cwd = os.getcwd()
        self.addCleanup(os.chdir, cwd)
        here = self.useFixture(fixtures.TempDir()).path
        os.chdir(here)
        with open(os.path.join(here, 'shadow.py'), 'w') as handle:
            handle.write('')
        result = environment.run_isolated(
            sys.executable, ['-c', 'import os, sys; print(os.getcwd());'
                             ' import shadow'],
            capture_output=True, text=True)
        self.assertNotEqual(0, result.returncode)
        self.assertIn("No module named 'shadow'", result.stderr)
        self.assertNotEqual(here, result.stdout.strip())


class OwnVersionTestCase(testtools.TestCase):

    def test_a_clones_egg_info_in_the_cwd_is_not_the_installed_version(self):
        _run_from_a_clone_with_egg_info(self, version='9.9.9')
        self.assertNotEqual('9.9.9', environment.own_version())


def _run_from_a_clone_with_egg_info(test, version):
    """cwd and sys.path[0]: a clone whose egg-info says ``version``.

    As after "pip install ." in a clone: the egg-info left there has no
    direct_url.json; the installed package has one.
    """
    clone = test.useFixture(fixtures.TempDir()).path
    egg_info = os.path.join(clone, 'nova_xloud.egg-info')
    os.mkdir(egg_info)
    with open(os.path.join(egg_info, 'PKG-INFO'), 'w') as handle:
        handle.write('Metadata-Version: 2.1\nName: nova-xloud\n'
                     'Version: %s\n' % version)
    test.addCleanup(os.chdir, os.getcwd())
    os.chdir(clone)
    test.useFixture(fixtures.MonkeyPatch('sys.path', [clone] + sys.path))
