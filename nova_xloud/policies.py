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

"""Policy rules of the live adjust API.

Nova's enforcer only knows the rules Nova registers, so ours are added to
it (idempotently) before every check. ``list_rules`` is also exposed on the
``oslo.policy.policies`` entry point (name ``nova_xloud``) so that
``oslopolicy-sample-generator --namespace nova_xloud`` documents them.
"""

from oslo_policy import policy

from nova.policies import base
from nova import policy as nova_policy

POLICY_ROOT = 'os_compute_api:os-xloud-adjust:%s'
UPDATE = POLICY_ROOT % 'update'
SHOW = POLICY_ROOT % 'show'

rules = [
    policy.DocumentedRuleDefault(
        name=UPDATE,
        check_str=base.ADMIN,
        description="Change the vCPUs and memory of a running or stopped "
                    "server without a reboot (live adjust).",
        operations=[{'method': 'POST',
                     'path': '/os-xloud-adjust/{server_id}'},
                    {'method': 'POST',
                     'path': '/servers/{server_id}/os-xloud-adjust'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name=SHOW,
        check_str=base.ADMIN,
        description="Show the minimum, current and maximum vCPUs and memory "
                    "of a server and its last live adjustment.",
        operations=[{'method': 'GET',
                     'path': '/os-xloud-adjust/{server_id}'},
                    {'method': 'GET',
                     'path': '/servers/{server_id}/os-xloud-adjust'}],
        scope_types=['project']),
]


def list_rules():
    return rules


def register(enforcer):
    """Register our defaults on an enforcer unless it already has them."""
    missing = [rule for rule in rules
               if rule.name not in enforcer.registered_rules]
    if missing:
        enforcer.register_defaults(missing)


def authorize(context, name, instance):
    """Check a rule for a server; raises PolicyNotAuthorized (403)."""
    nova_policy.init()
    register(nova_policy._ENFORCER)
    context.can(name, target={'project_id': instance.project_id})
