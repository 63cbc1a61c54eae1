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

"""``nova-xloud demo`` on the patched Nova of this environment.

The command runs as a newcomer types it; this environment has the
release's patched Nova and its test requirements, so the demo runs here
without building a virtualenv (tox -e demo covers that path).
"""

import io
import os
import re
import subprocess
import sys

import fixtures
import testtools

from nova_xloud.demo import scenario
from nova_xloud import releases
from nova_xloud.series import target as target_mod
from tests import readme

KIB_PER_MIB = 1024


def installed_release():
    target = target_mod.find(target_mod.installed_root())
    return releases.for_nova_version(target.nova_version)


def nova_xloud_command():
    return os.path.join(os.path.dirname(sys.executable), 'nova-xloud')


class DemoCommandTestCase(testtools.TestCase):

    def test_demo_adjusts_the_server_up_and_down(self):
        release = installed_release()
        result = subprocess.run([nova_xloud_command(), 'demo', release.name],
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        out = result.stdout
        self.assertIn('[demo] this environment has the patched nova %s'
                      % release.nova_version, out)
        self.assertIn('nova-xloud demo: nova %s (%s) with the nova-xloud'
                      ' series' % (release.nova_version, release.name), out)
        # A progress line before each slow step, its time after it.
        for step in ('starting placement, nova-api', 'booting server',
                     'waiting for nova-compute'):
            self.assertRegex(out, r'\[demo\] %s[^\n]* \.\.\.\n\[demo\] \.\.\.'
                                  r' done in \d+\.\d s' % re.escape(step))
        self.assertEqual(
            ['<vcpu current="1">4</vcpu>', '<vcpu current="3">4</vcpu>',
             '<vcpu current="2">4</vcpu>'],
            re.findall(r'<vcpu[^>]*>4</vcpu>', out))
        self.assertEqual(
            ['<currentMemory>%d</currentMemory>' % (mib * KIB_PER_MIB)
             for mib in (1024, 3072, 2048)],
            re.findall(r'<currentMemory>\d+</currentMemory>', out))
        self.assertEqual(
            ['DISK_GB=1, MEMORY_MB=1024, VCPU=1',
             'DISK_GB=1, MEMORY_MB=3072, VCPU=3',
             'DISK_GB=1, MEMORY_MB=2048, VCPU=2'],
            re.findall(r'\(compute1\): (.*)', out))
        self.assertEqual(2, out.count('event compute_xloud_adjust on'
                                      ' compute1: Success'))
        summary = out[out.index('== summary'):].splitlines()
        self.assertEqual([['after', 'boot', '1', '1024'],
                          ['after', 'the', 'adjustment', 'up', '3', '3072'],
                          ['after', 'the', 'adjustment', 'down', '2',
                           '2048']],
                         [line.split() for line in summary[2:5]])
        self.assertIn('[demo] finished', out)
        self.assertEqual('', result.stderr)
        # What README.rst shows is what the demo prints.
        shown = readme.block_from('nova-xloud demo: nova ')
        lines = out.splitlines()
        printed = [i for i, line in enumerate(lines)
                   if line.startswith('nova-xloud demo: nova ')][0]
        self.assertEqual(readme.normalised(shown),
                         readme.normalised(lines[printed:]))


class ScenarioTestCase(testtools.TestCase):
    """The scenario module in this process, where it can be steered."""

    def _main(self, *argv):
        out = self.useFixture(fixtures.MonkeyPatch(
            'sys.stdout', io.StringIO())).new_value
        err = self.useFixture(fixtures.MonkeyPatch(
            'sys.stderr', io.StringIO())).new_value
        code = scenario.main([installed_release().name] + list(argv))
        return code, out.getvalue(), err.getvalue()

    def test_full_xml_prints_the_whole_domain(self):
        code, out, err = self._main('--full-xml')
        self.assertEqual(0, code, err)
        self.assertEqual(3, out.count('<domain '))
        self.assertEqual(3, out.count('</domain>'))
        self.assertIn('<devices>', out)

    def test_a_failed_step_fails_the_demo_with_its_reason(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.demo.scenario.ADJUSTMENTS',
            (('too far', {'current_vcpus': 5}),)))
        code, out, err = self._main()
        self.assertEqual(1, code)
        self.assertNotIn('[demo] finished', out)
        self.assertIn('400', err)
        self.assertIn('current_vcpus', err)

    def test_values_other_than_the_requested_fail_the_demo(self):
        # The server gets 2 vCPUs when 3 are asked: the guest, placement
        # and the API agree with each other, not with the request.
        post = scenario.Demo._post

        def post_two_vcpus(demo, server, body, api=None):
            return post(demo, server, dict(body, current_vcpus=2), api)

        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.demo.scenario.Demo._post', post_two_vcpus))
        code, out, err = self._main()
        self.assertEqual(1, code, out)
        self.assertNotIn('[demo] finished', out)
        self.assertIn('not the requested ones', err)
