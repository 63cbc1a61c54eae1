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

"""The command outputs README.rst shows are what the commands print."""

import io
import os

import fixtures
import testtools

from nova_xloud.cmd import series as cli
from tests import readme


class ReadmeTestCase(testtools.TestCase):

    def _run(self, *argv):
        out = self.useFixture(fixtures.MonkeyPatch('sys.stdout',
                                                   io.StringIO())).new_value
        self.assertEqual(0, cli.main(list(argv)))
        return out.getvalue().splitlines()

    def test_releases(self):
        # The series of this checkout, as a newcomer's clone has them.
        self.useFixture(fixtures.EnvironmentVariable('NOVA_XLOUD_PATCHES',
                                                     None))
        self.assertEqual(readme.output_of('nova-xloud releases'),
                         self._run('releases'))

    def test_the_literal_blocks_are_found(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'r')
        with open(path, 'w') as handle:
            handle.write('Text::\n\n    $ cmd\n    out 1\n\n    out 2\n\n'
                         'Next paragraph.\n\nOther::\n\n  two spaces\n')
        self.assertEqual([['$ cmd', 'out 1', '', 'out 2'], []],
                         readme.literal_blocks(path))
        self.assertEqual(['out 1', '', 'out 2'],
                         readme.output_of('cmd', path))
        self.assertRaises(AssertionError, readme.output_of, 'other', path)
        self.assertEqual(['out 1', '', 'out 2'],
                         readme.block_from('out 1', path))

    def test_normalised(self):
        self.assertEqual(
            ['server UUID req-UUID done in N.N s',
             'demo: nova VERSION (RELEASE) with'],
            readme.normalised(['server 9238d2b6-a822-42cd-98dd-b200621ba473'
                               ' req-c0087b95-4c4f-4f33-823a-5ae685386e45'
                               ' done in 12.5 s  ',
                               'demo: nova 29.4.0 (2024.1) with']))
