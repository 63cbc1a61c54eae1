"""The demo: an in-process Nova, one server, two live adjustments.

``nova-xloud demo`` runs it with a Python that has the release's patched
Nova and its test requirements:

    python -m nova_xloud.demo RELEASE [--full-xml]

It is the deployment of our functional tests (Nova's own fixtures:
in-memory databases, placement, API, conductor, scheduler, one libvirt
compute on fakelibvirt), driven through the REST APIs as an admin would.
Everything it prints is read back from Nova, placement and the fake
hypervisor, not from what was asked.
"""

import argparse
import contextlib
import json
import logging
import sys
import time

from lxml import etree
import testtools

from nova_xloud import releases
from nova_xloud.series import series as series_mod
from nova_xloud.series import target as target_mod
from nova_xloud.testing import base

MAXIMUM = {'vcpu': 4, 'memory_mb': 4096}
MINIMUM = {'minimum_cpu': '1', 'minimum_memory': '1024'}
ADJUSTMENTS = (('up', {'current_vcpus': 3, 'current_memory_mb': 3072}),
               ('down', {'current_vcpus': 2, 'current_memory_mb': 2048}))
XML_EXCERPT = ('name', 'memory', 'currentMemory', 'vcpu')


class Report(object):
    """Writes to the terminal, past Nova's output capture fixtures."""

    def __init__(self, stream):
        self.stream = stream

    def line(self, text=''):
        self.stream.write(text + '\n')
        self.stream.flush()

    def section(self, title):
        self.line()
        self.line('== %s ==' % title)

    @contextlib.contextmanager
    def slow(self, what):
        """A progress line before a slow step and its time after it."""
        self.line('[demo] %s ...' % what)
        start = time.monotonic()
        yield
        self.line('[demo] ... done in %.1f s' % (time.monotonic() - start))


def xml_lines(xml, full):
    tree = etree.fromstring(xml)
    if full:
        etree.indent(tree, space='  ')
        return etree.tostring(tree, encoding='unicode').splitlines()
    return [etree.tostring(tree.find(name), encoding='unicode',
                           with_tail=False)
            for name in XML_EXCERPT if tree.find(name) is not None]


class Demo(base.LiveAdjustBase):
    """The scenario, as a test case so that Nova's fixtures run it."""

    report = None
    full_xml = False

    def setUp(self):
        # The last cleanup: see the end of test_demo.
        root = logging.getLogger()
        self.addCleanup(root.setLevel, root.level)
        with self.report.slow('starting placement, nova-api, nova-conductor,'
                              ' nova-scheduler and nova-compute (libvirt'
                              ' driver on fakelibvirt) in this process'):
            super().setUp()
        self.rows = []

    def test_demo(self):
        flavor_id = self._flavor(name='xloud.demo',
                                 **dict(MAXIMUM, **MINIMUM))
        flavor = self.admin_api.api_get('/flavors/%s' % flavor_id).body
        self._show_flavor(flavor['flavor'])
        with self.report.slow('booting server xloud-demo'):
            server = self._boot(flavor_id, name='xloud-demo')
        self._show_state('after boot', server,
                         (int(MINIMUM['minimum_cpu']),
                          int(MINIMUM['minimum_memory'])))
        for label, body in ADJUSTMENTS:
            self._adjust(server, body)
            self._show_state('after the adjustment %s' % label, server,
                             _requested(body))
        self._show_summary(server, _requested(ADJUSTMENTS[-1][1]))
        # The first cleanup: the services' shutdown logs to the handler
        # Nova's logging setup left on the root logger.
        self.addCleanup(logging.getLogger().setLevel, logging.ERROR)

    def _show_flavor(self, flavor):
        self.report.line('[demo] flavor %s: vcpus %d, ram %d MiB, extra specs'
                         ' %s' % (flavor['name'], flavor['vcpus'],
                                  flavor['ram'],
                                  json.dumps(flavor['extra_specs'],
                                             sort_keys=True)))

    def _adjust(self, server, body):
        url = base.ADJUST_URL % server['id']
        self.report.section('POST %s %s' % (url, json.dumps(body)))
        accepted = self._post(server, body)
        # As the API returns it, wrapper included.
        self.report.line('202 Accepted: %s' % json.dumps(accepted,
                                                         sort_keys=True))
        response = accepted['adjustment']
        self.assertEqual(_requested(body),
                         (response['current_vcpus'],
                          response['current_memory_mb']),
                         'the accepted values are not the requested ones')
        with self.report.slow('waiting for nova-compute to change the guest'
                              ' (instance action %s)'
                              % response['request_id']):
            _, event = self._wait_event(server, response['request_id'])
        self.report.line('event %s on %s: %s' % (
            event['event'], event['host'], event['result']))
        if event['result'] != 'Success':
            self.fail('the adjustment failed: %s' % event)

    def _show_state(self, title, server, expected):
        report = self.report
        report.section(title)
        domain = self._domain(server)
        report.line('domain XML (virsh dumpxml %s; memory in KiB)%s:' % (
            domain.name(), '' if self.full_xml else
            ', the elements that change; --full-xml shows it all'))
        for text in xml_lines(domain.XMLDesc(0), self.full_xml):
            report.line('  ' + text)
        report.line('placement allocations of the server:')
        allocations = self._get_allocations_by_server_uuid(server['id'])
        for provider, allocation in sorted(allocations.items()):
            report.line('  provider %s (%s): %s' % (
                provider, base.COMPUTE, ', '.join(
                    '%s=%d' % item
                    for item in sorted(allocation['resources'].items()))))
        values = self._agreed_values(server)
        self.assertEqual(expected, values,
                         '%s: the guest, placement and the API have (vCPUs,'
                         ' MiB) %s, not the %s asked for'
                         % (title, values, expected))
        self.rows.append((title,) + values)

    def _agreed_values(self, server):
        """(vCPUs, MiB) of the guest, checked against placement and API."""
        guest = self._live(server)
        shown = self.admin_api.api_get(
            base.ADJUST_URL % server['id']).body['adjustment']
        self.assertEqual(guest, self._allocation(server), 'placement')
        self.assertEqual(guest, (shown['current_vcpus'],
                                 shown['current_memory_mb']), 'API')
        return guest

    def _show_summary(self, server, expected):
        shown = self.admin_api.api_get(base.ADJUST_URL % server['id']).body
        self.report.section('GET %s' % (base.ADJUST_URL % server['id']))
        self.report.line(json.dumps(shown, indent=2, sort_keys=True))
        current = (shown['adjustment']['current_vcpus'],
                   shown['adjustment']['current_memory_mb'])
        self.assertEqual(expected, current,
                         'GET shows %s, not the %s asked for last'
                         % (current, expected))
        self.report.section('summary: guest, placement and API agree with'
                            ' what was asked')
        header = ('', 'vCPUs', 'memory MiB')
        rows = [header] + [tuple(str(cell) for cell in row)
                           for row in self.rows]
        widths = [max(len(row[i]) for row in rows)
                  for i in range(len(header))]
        for row in rows:
            self.report.line('  '.join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths))))


def _requested(body):
    return body['current_vcpus'], body['current_memory_mb']


def _patched_nova(release):
    """The installed Nova's version, checked against ``release``."""
    target = target_mod.find(target_mod.installed_root())
    state = series_mod.status(target)
    if state['applied_release'] != release.name:
        raise SystemExit('nova %s here does not carry the %s series'
                         % (target.nova_version, release.name))
    return target.nova_version


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m nova_xloud.demo',
        description='Run the nova-xloud demo in this Python.')
    parser.add_argument('release', choices=releases.names())
    parser.add_argument('--full-xml', action='store_true')
    args = parser.parse_args(argv)
    release = releases.get(args.release)
    report = Report(sys.stdout)
    report.line('nova-xloud demo: nova %s (%s) with the nova-xloud series,'
                ' in this process; nothing is left behind'
                % (_patched_nova(release), release.name))
    Demo.report, Demo.full_xml = report, args.full_xml
    result = testtools.TestResult()
    Demo('test_demo').run(result)
    if result.wasSuccessful() and result.testsRun == 1 and not (
            result.skip_reasons):
        report.line()
        report.line('[demo] finished: the guest, placement and the API agree'
                    ' with what was asked at every step')
        return 0
    for _, text in result.errors + result.failures:
        print(text, file=sys.stderr)
    for reason in result.skip_reasons:
        print('the demo did not run: %s' % reason, file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
