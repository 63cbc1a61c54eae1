import configparser
import os

import testtools

from nova_xloud import releases

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


class PackagingTestCase(testtools.TestCase):

    def test_every_series_is_shipped_as_data(self):
        config = configparser.ConfigParser()
        config.read(os.path.join(TOP, 'setup.cfg'))
        shipped = config['files']['data_files']
        for name in os.listdir(os.path.join(TOP, 'patches')):
            self.assertIn('share/nova-xloud/patches/%s = patches/%s/*'
                          % (name, name), shipped)

    def test_every_release_has_its_constraints(self):
        for release in releases.RELEASES:
            with open(release.constraints_path) as handle:
                text = handle.read()
            self.assertIn('\noslo.config===', text)
            self.assertNotIn('\nlibvirt-python===', text)

    def test_2026_2_constraints_carry_the_bumps_nova_34_needs(self):
        with open(releases.get('2026.2').constraints_path) as handle:
            lines = handle.read().splitlines()
        self.assertIn('keystoneauth1===5.16.0', lines)
        self.assertIn('oslo.versionedobjects===3.12.0', lines)
