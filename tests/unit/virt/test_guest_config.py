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

import fixtures
from lxml import etree
from nova import context
from nova import test
from nova.tests.unit import fake_instance
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import driver as libvirt_driver
from oslo_utils.fixture import uuidsentinel as uuids

from nova_xloud.virt import guest_config
from nova_xloud.virt import resources
from tests.unit.virt import test_resources


def make_guest(balloon_model='virtio'):
    guest = vconfig.LibvirtConfigGuest()
    guest.virt_type = 'kvm'
    guest.name = 'instance-00000001'
    guest.uuid = uuids.instance
    guest.memory = 4096 * 1024
    guest.vcpus = 4
    guest.os_type = 'hvm'
    if balloon_model:
        balloon = vconfig.LibvirtConfigMemoryBalloon()
        balloon.model = balloon_model
        guest.add_device(balloon)
    return guest


class LibvirtConfigGuestCurrentTestCase(test.NoDBTestCase):
    """The hooked LibvirtConfigGuest fields, formatting and parsing."""

    def test_unset_leaves_xml_unchanged(self):
        guest = make_guest()
        self.assertIsNone(guest.vcpus_current)
        self.assertIsNone(guest.current_memory)
        xml = guest.to_xml()
        self.assertIn('<memory>4194304</memory>', xml)
        self.assertIn('<vcpu>4</vcpu>', xml)
        self.assertNotIn('current', xml)
        self.assertNotIn('currentMemory', xml)

    def test_format_current(self):
        guest = make_guest()
        guest.vcpus_current = 2
        guest.current_memory = 1024 * 1024
        root = etree.fromstring(guest.to_xml())
        children = [child.tag for child in root]
        self.assertEqual(children.index('memory') + 1,
                         children.index('currentMemory'))
        self.assertEqual('4194304', root.find('memory').text)
        self.assertEqual('1048576', root.find('currentMemory').text)
        self.assertEqual('4', root.find('vcpu').text)
        self.assertEqual({'current': '2'}, dict(root.find('vcpu').attrib))

    def test_format_current_with_cpuset(self):
        guest = make_guest()
        guest.cpuset = {0, 1, 2, 3}
        guest.vcpus_current = 1
        self.assertIn('<vcpu cpuset="0-3" current="1">4</vcpu>',
                      guest.to_xml())

    def test_parse_current(self):
        xml = """
            <domain type="kvm">
              <uuid>%s</uuid>
              <name>instance-00000001</name>
              <memory>4194304</memory>
              <currentMemory>1048576</currentMemory>
              <vcpu placement="static" current="2">4</vcpu>
            </domain>""" % uuids.instance
        guest = vconfig.LibvirtConfigGuest()
        guest.parse_str(xml)
        self.assertEqual(4194304, guest.memory)
        self.assertEqual(1048576, guest.current_memory)
        self.assertEqual(4, guest.vcpus)
        self.assertEqual(2, guest.vcpus_current)

    def test_parse_without_current(self):
        guest = vconfig.LibvirtConfigGuest()
        guest.parse_str('<domain type="kvm"><memory>2048</memory>'
                        '<vcpu>2</vcpu></domain>')
        self.assertIsNone(guest.current_memory)
        self.assertIsNone(guest.vcpus_current)

    def test_round_trip(self):
        guest = make_guest(balloon_model=None)
        guest.vcpus_current = 3
        guest.current_memory = 3 * 1024 * 1024
        parsed = vconfig.LibvirtConfigGuest()
        parsed.parse_str(guest.to_xml())
        self.assertEqual((3, 3 * 1024 * 1024, 4, 4096 * 1024),
                         (parsed.vcpus_current, parsed.current_memory,
                          parsed.vcpus, parsed.memory))


class SetCurrentResourcesTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.ctxt = context.get_admin_context()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.virt.guest_config._no_balloon_warned', False))
        self.mock_warn = self.useFixture(fixtures.MockPatchObject(
            guest_config.LOG, 'warning')).mock

    def _apply(self, flavor, guest=None, **instance_kwargs):
        guest = guest or make_guest()
        instance = fake_instance.fake_instance_obj(
            self.ctxt, flavor=flavor, **instance_kwargs)
        guest_config.set_current_resources(instance, flavor, None, guest)
        return guest

    def test_is_registered_with_the_libvirt_driver(self):
        hooks = [hook.plugin for hook in libvirt_driver._guest_config_hooks()]
        self.assertIn(guest_config.set_current_resources, hooks)

    def test_both_minimums(self):
        flavor = test_resources.make_flavor(minimum_cpu='2',
                                            minimum_memory='1024')
        guest = self._apply(flavor)
        self.assertEqual(2, guest.vcpus_current)
        self.assertEqual(1024 * 1024, guest.current_memory)
        self.assertEqual(4, guest.vcpus)
        self.assertEqual(4096 * 1024, guest.memory)

    def test_cpu_only(self):
        guest = self._apply(test_resources.make_flavor(minimum_cpu='1'))
        self.assertEqual(1, guest.vcpus_current)
        self.assertIsNone(guest.current_memory)

    def test_memory_only(self):
        guest = self._apply(test_resources.make_flavor(minimum_memory='512'))
        self.assertIsNone(guest.vcpus_current)
        self.assertEqual(512 * 1024, guest.current_memory)

    def test_no_specs_leaves_guest_untouched(self):
        untouched = make_guest().to_xml()
        guest = self._apply(test_resources.make_flavor())
        self.assertEqual(untouched, guest.to_xml())

    def test_tenant_server_metadata_is_ignored(self):
        untouched = make_guest().to_xml()
        guest = self._apply(
            test_resources.make_flavor(),
            metadata={'minimum_cpu': '1', 'minimum_memory': '512'})
        self.assertEqual(untouched, guest.to_xml())

    def test_uses_current_resources(self):
        with mock.patch.object(
                resources, 'current_resources',
                return_value=resources.Resources(3, 3000)) as mock_current:
            guest = self._apply(test_resources.make_flavor())
        mock_current.assert_called_once()
        self.assertEqual((3, 3000 * 1024),
                         (guest.vcpus_current, guest.current_memory))

    def test_balloon_present_no_warning(self):
        self._apply(test_resources.make_flavor(minimum_memory='512'))
        self.mock_warn.assert_not_called()

    def test_no_balloon_warns_once(self):
        flavor = test_resources.make_flavor(minimum_memory='512')
        for model in ('none', None, 'none'):
            guest = self._apply(flavor, guest=make_guest(model))
            # The boot still goes ahead with the minimum.
            self.assertEqual(512 * 1024, guest.current_memory)
        self.mock_warn.assert_called_once()
        self.assertIn('mem_stats_period_seconds',
                      self.mock_warn.call_args[0][0])

    def test_no_balloon_cpu_only_does_not_warn(self):
        self._apply(test_resources.make_flavor(minimum_cpu='1'),
                    guest=make_guest('none'))
        self.mock_warn.assert_not_called()


def _balloon_xml(guest):
    root = etree.fromstring(guest.to_xml())
    return [dict(dev.attrib) for dev in root.iter('memballoon')]


def _upstream_balloon_attributes():
    balloon = vconfig.LibvirtConfigMemoryBalloon()
    balloon.model = 'virtio'
    balloon.period = 10
    return dict(balloon.format_dom().attrib)


class CappedMemoryBalloonTestCase(test.NoDBTestCase):
    """The balloon of this release's Nova, made a cap."""

    def test_this_release_writes_autodeflate_from_2025_2_on(self):
        # What the README states per release: Nova 32 (2025.2) and later
        # write autodeflate and freePageReporting, older releases neither.
        major = int(metadata.version('nova').split('.')[0])
        attributes = _upstream_balloon_attributes()
        if major >= 32:
            self.assertEqual('on', attributes.get('autodeflate'))
            self.assertEqual('on', attributes.get('freePageReporting'))
        else:
            self.assertNotIn('autodeflate', attributes)
            self.assertNotIn('freePageReporting', attributes)

    def test_autodeflate_off_where_nova_writes_it_else_unchanged(self):
        upstream = vconfig.LibvirtConfigMemoryBalloon()
        upstream.model = 'virtio'
        upstream.period = 10
        capped = guest_config.CappedMemoryBalloon.from_balloon(upstream)
        expected = _upstream_balloon_attributes()
        if 'autodeflate' in expected:
            expected['autodeflate'] = 'off'
        dom = capped.format_dom()
        self.assertEqual(expected, dict(dom.attrib))
        # The stats period (and anything else Nova writes) is kept.
        self.assertEqual(etree.tostring(upstream.format_dom().find('stats')),
                         etree.tostring(dom.find('stats')))

    def test_keeps_the_attributes_of_the_balloon_it_replaces(self):
        upstream = vconfig.LibvirtConfigMemoryBalloon()
        upstream.model = 'virtio'
        upstream.period = 7
        capped = guest_config.CappedMemoryBalloon.from_balloon(upstream)
        self.assertEqual(upstream.__dict__, capped.__dict__)
        self.assertIsInstance(capped, vconfig.LibvirtConfigMemoryBalloon)


class CapMemoryBalloonHookTestCase(test.NoDBTestCase):
    """set_current_resources makes the balloon a cap when it sets memory."""

    def setUp(self):
        super().setUp()
        self.ctxt = context.get_admin_context()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.virt.guest_config._no_balloon_warned', True))

    def _apply(self, flavor, guest=None, system_metadata=None):
        guest = guest or make_guest()
        instance = fake_instance.fake_instance_obj(self.ctxt, flavor=flavor)
        instance.system_metadata = dict(system_metadata or {})
        guest_config.set_current_resources(instance, flavor, None, guest)
        return guest

    def _assert_capped(self, guest):
        expected = _upstream_balloon_attributes()
        if 'autodeflate' in expected:
            expected['autodeflate'] = 'off'
        self.assertEqual([expected], _balloon_xml(guest))
        self.assertNotIn('autodeflate="on"', guest.to_xml())

    def test_minimum_memory_caps_the_balloon(self):
        guest = make_guest()
        guest.devices[0].period = 10
        self._assert_capped(self._apply(
            test_resources.make_flavor(minimum_memory='1024'), guest=guest))

    def test_minimum_memory_at_its_maximum_caps_the_balloon(self):
        # Persisted at the flavor's ram: it may be ballooned down later
        # and must not grow back by itself then.
        flavor = test_resources.make_flavor(minimum_memory='1024')
        guest = make_guest()
        guest.devices[0].period = 10
        guest = self._apply(flavor, guest=guest, system_metadata={
            'xloud_current_vcpus': '4', 'xloud_current_memory_mb': '4096',
            'xloud_current_flavorid': 'xl-id'})
        self.assertEqual(4096 * 1024, guest.current_memory)
        self._assert_capped(guest)

    def test_persisted_memory_without_the_specs_caps_the_balloon(self):
        guest = make_guest()
        guest.devices[0].period = 10
        guest = self._apply(test_resources.make_flavor(), guest=guest,
                            system_metadata={
                                'xloud_current_vcpus': '4',
                                'xloud_current_memory_mb': '2048',
                                'xloud_current_flavorid': 'xl-id'})
        self.assertEqual(2048 * 1024, guest.current_memory)
        self._assert_capped(guest)

    def test_cpu_only_keeps_the_upstream_balloon(self):
        untouched = make_guest()
        guest = self._apply(test_resources.make_flavor(minimum_cpu='1'))
        self.assertIs(type(untouched.devices[0]), type(guest.devices[0]))
        self.assertEqual(_balloon_xml(untouched), _balloon_xml(guest))

    def test_no_specs_keeps_the_upstream_balloon(self):
        guest = self._apply(test_resources.make_flavor())
        self.assertIs(vconfig.LibvirtConfigMemoryBalloon,
                      type(guest.devices[0]))
        self.assertEqual(make_guest().to_xml(), guest.to_xml())

    def test_balloon_model_none_is_left_alone(self):
        guest = self._apply(test_resources.make_flavor(minimum_memory='512'),
                            guest=make_guest('none'))
        self.assertIs(vconfig.LibvirtConfigMemoryBalloon,
                      type(guest.devices[0]))
        self.assertEqual(_balloon_xml(make_guest('none')),
                         _balloon_xml(guest))

    def test_other_devices_keep_their_order(self):
        guest = make_guest()
        disk = vconfig.LibvirtConfigGuestDisk()
        guest.add_device(disk)
        guest = self._apply(test_resources.make_flavor(minimum_memory='512'),
                            guest=guest)
        self.assertIsInstance(guest.devices[0],
                              guest_config.CappedMemoryBalloon)
        self.assertIs(disk, guest.devices[1])
