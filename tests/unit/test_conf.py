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

from importlib import metadata

from nova import test

from nova_xloud import conf


class ConfTestCase(test.NoDBTestCase):

    def test_list_opts(self):
        [(group, opts)] = conf.list_opts()
        self.assertEqual('xloud', group.name)
        for opt in opts:
            self.assertTrue(opt.help)

    def test_registered_for_oslo_config_generator(self):
        entry_points = [ep for ep in metadata.entry_points(
            group='oslo.config.opts') if ep.name == 'nova_xloud']
        self.assertEqual(1, len(entry_points))
        self.assertIs(conf.list_opts, entry_points[0].load())

    def test_default(self):
        self.assertTrue(conf.CONF.xloud.claim_minimum_in_placement)
