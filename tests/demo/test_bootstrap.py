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

"""``nova-xloud demo`` where only nova-xloud is installed (tox -e demo).

The command builds its own virtualenv with the newest release's patched
Nova and its test requirements, runs the demo there, and reuses the
virtualenv on the next run.
"""

import importlib.metadata
import importlib.util
import os
import subprocess
import sys

import re

import fixtures
import testtools

from nova_xloud import releases
from tests import readme


def nova_xloud(*args, cwd=None):
    command = os.path.join(os.path.dirname(sys.executable), 'nova-xloud')
    return subprocess.run((command,) + args, capture_output=True,
                          text=True, timeout=1800, cwd=cwd)


# What the first run prints that depends on the machine, not on the demo:
# the state of the sdist cache (downloaded or cached, unpacked or not).
_CACHE_STATE = re.compile(r'^  (using|downloading|verified|unpacking) ')
_PYTHON = re.compile(r'/python3\.\d+/')


def first_run_steps(lines, venv, release):
    """The first run's step lines, with paths and versions made generic."""
    steps = []
    for line in lines:
        if _CACHE_STATE.match(line):
            continue
        line = line.replace(venv, 'VENV').replace(release.nova_version,
                                                  'VERSION')
        line = re.sub(r' from (-e )?\S+$', ' from SOURCE', line)
        steps.append(_PYTHON.sub('/python3.N/', line).replace(
            release.name, 'RELEASE'))
        if line.startswith('[demo] VENV is ready'):
            return steps
    raise AssertionError('no "[demo] ... is ready" line in %s' % lines)


def clone_after_pip_install(parent):
    """A directory like a clone after ``pip install .``: source, egg-info.

    The egg-info has the version installed here, as after ``pip install .``.
    """
    clone = os.path.join(parent, 'clone')
    os.mkdir(clone)
    package = os.path.dirname(os.path.abspath(releases.__file__))
    os.symlink(os.path.dirname(package), os.path.join(clone, 'nova_xloud'))
    egg_info = os.path.join(clone, 'nova_xloud.egg-info')
    os.mkdir(egg_info)
    with open(os.path.join(egg_info, 'PKG-INFO'), 'w') as handle:
        handle.write('Metadata-Version: 2.1\nName: nova-xloud\nVersion: %s\n'
                     % importlib.metadata.version('nova-xloud'))
    return clone


class BootstrapTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.assertIsNone(importlib.util.find_spec('nova'),
                          'this test needs an environment without Nova')
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.venv = os.path.join(self.tmp, 'demo')

    def _assert_demo_ran(self, result, release):
        self.assertEqual(0, result.returncode,
                         result.stdout + result.stderr)
        self.assertIn('nova-xloud demo: nova %s (%s) with the nova-xloud'
                      ' series' % (release.nova_version, release.name),
                      result.stdout)
        self.assertIn('<vcpu current="3">4</vcpu>', result.stdout)
        self.assertIn('[demo] finished', result.stdout)

    def test_the_demo_builds_its_virtualenv_then_reuses_it(self):
        release = releases.newest()
        # From a clone where "pip install ." left nova_xloud.egg-info: it
        # must not count as nova-xloud installed in the new virtualenv.
        first = nova_xloud('demo', '--venv', self.venv,
                           cwd=clone_after_pip_install(self.tmp))
        self._assert_demo_ran(first, release)
        # Step by step what README.rst shows of a first run (its first
        # line, which names the default virtualenv, is not printed for
        # --venv).
        shown = readme.block_from('[demo] creating the virtualenv ')
        readme_venv = shown[0].rsplit(' ', 1)[-1]
        self.assertEqual(
            first_run_steps(shown, readme_venv, release),
            first_run_steps(first.stdout.splitlines(), self.venv, release))

        again = nova_xloud('demo', '--venv', self.venv)
        self._assert_demo_ran(again, release)
        self.assertNotIn('[demo] creating', again.stdout)
        self.assertNotIn('[demo] installing', again.stdout)
        self.assertTrue(again.stdout.startswith(
            '[demo] %s is ready\n' % self.venv), again.stdout)
