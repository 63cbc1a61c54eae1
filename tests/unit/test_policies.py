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
from unittest import mock

from nova import context
from nova import exception
from nova import policy as nova_policy
from nova import test
from nova.tests.unit import fake_instance

from nova_xloud import policies


class PoliciesTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.instance = fake_instance.fake_instance_obj(
            context.get_admin_context(), project_id='p1')

    def test_rules_documented(self):
        self.assertEqual(
            ['os_compute_api:os-xloud-adjust:update',
             'os_compute_api:os-xloud-adjust:show'],
            [rule.name for rule in policies.list_rules()])
        for rule in policies.list_rules():
            self.assertEqual('rule:context_is_admin', rule.check_str)
            self.assertEqual(['project'], rule.scope_types)
            self.assertTrue(rule.description)
            self.assertTrue(rule.operations)

    def test_entry_point(self):
        entry_points = [ep for ep in metadata.entry_points(
            group='oslo.policy.policies') if ep.name == 'nova_xloud']
        self.assertEqual(1, len(entry_points))
        self.assertIs(policies.list_rules, entry_points[0].load())

    def test_register_is_idempotent(self):
        enforcer = mock.Mock(registered_rules={})
        policies.register(enforcer)
        enforcer.register_defaults.assert_called_once_with(policies.rules)
        enforcer = mock.Mock(registered_rules={
            rule.name: rule for rule in policies.rules})
        policies.register(enforcer)
        enforcer.register_defaults.assert_not_called()

    def _ctxt(self, roles, project_id='p1'):
        return context.RequestContext('u1', project_id, roles=roles)

    def test_project_admin_allowed(self):
        for name in (policies.UPDATE, policies.SHOW):
            policies.authorize(self._ctxt(['admin', 'member', 'reader']),
                               name, self.instance)
            # Twice: the rules are registered only once.
            policies.authorize(self._ctxt(['admin']), name, self.instance)
        self.assertIn(policies.UPDATE, nova_policy._ENFORCER.registered_rules)

    def test_member_and_reader_forbidden(self):
        for roles in (['member', 'reader'], ['reader'], []):
            for name in (policies.UPDATE, policies.SHOW):
                self.assertRaises(exception.PolicyNotAuthorized,
                                  policies.authorize, self._ctxt(roles),
                                  name, self.instance)

    def test_after_policy_reset(self):
        nova_policy.reset()
        policies.authorize(self._ctxt(['admin']), policies.SHOW,
                           self.instance)
