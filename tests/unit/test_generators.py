"""The oslo generators document our options and policies."""

import os
import subprocess
import sys

import testtools


def _run(tool, *args):
    command = os.path.join(os.path.dirname(sys.executable), tool)
    return subprocess.run([command] + list(args), capture_output=True,
                          text=True, check=True).stdout


class GeneratorsTestCase(testtools.TestCase):

    def test_config_generator_prints_our_options_with_help(self):
        out = _run('oslo-config-generator', '--namespace', 'nova_xloud')
        self.assertIn('\n[xloud]\n', out)
        self.assertIn('\n#claim_minimum_in_placement = true\n', out)
        self.assertIn('\n#min_memory_mb = 256\n', out)
        self.assertIn('# Claim the flavor minimum in placement.', out)

    def test_policy_generator_prints_our_rules_with_defaults(self):
        out = _run('oslopolicy-sample-generator', '--namespace',
                   'nova_xloud')
        for action in ('update', 'show'):
            self.assertIn('\n#"os_compute_api:os-xloud-adjust:%s": '
                          '"rule:context_is_admin"\n' % action, out)
        for path in ('/os-xloud-adjust/{server_id}',
                     '/servers/{server_id}/os-xloud-adjust'):
            self.assertIn('# POST  %s' % path, out)
            self.assertIn('# GET  %s' % path, out)
        self.assertIn('# Intended scope(s): project', out)
