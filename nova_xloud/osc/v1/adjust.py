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

"""``openstack server adjust set`` and ``openstack server adjust show``.

Both resolve the server by name or ID through the SDK compute proxy and
call /os-xloud-adjust/{server_id} on it. ``set --wait`` follows the
``xloud-adjust`` instance action until its ``compute_xloud_adjust``
event has a result; ``set --dry-run`` prints, per value, whether it can
be applied now and every reason it cannot. ``show`` prints what was last
requested, what libvirt applied (current) and what the guest itself showed
(observed), flattened into columns.
"""

import argparse
import sys
import time

from openstack import exceptions as sdk_exceptions
from osc_lib.command import command
from osc_lib import exceptions
from osc_lib.i18n import _
from osc_lib import utils

URL = '/os-xloud-adjust/%s'
ACTION_URL = '/servers/%s/os-instance-actions/%s'
EVENT = 'compute_xloud_adjust'
# The first microversion whose instance action events have "details".
EVENT_DETAILS_MICROVERSION = '2.84'
WAIT_INTERVAL = 2
WAIT_TIMEOUT = 600

SET_COLUMNS = ('server_id', 'request_id', 'current_vcpus',
               'current_memory_mb', 'persist')
# The observed values of GET, flattened: (column, (observed key, field)).
OBSERVED_COLUMNS = (
    ('observed_vcpus', ('vcpus', 'online')),
    ('observed_vcpus_source', ('vcpus', 'source')),
    ('observed_vcpus_at', ('vcpus', 'observed_at')),
    ('observed_vcpus_reason', ('vcpus', 'reason')),
    ('observed_memory_actual_mb', ('memory', 'actual_mb')),
    ('observed_memory_available_mb', ('memory', 'available_mb')),
    ('observed_memory_usable_mb', ('memory', 'usable_mb')),
    ('observed_memory_source', ('memory', 'source')),
    ('observed_memory_at', ('memory', 'observed_at')),
    ('observed_memory_reason', ('memory', 'reason')),
)
SHOW_COLUMNS = ('server_id', 'minimum_vcpus', 'current_vcpus',
                'maximum_vcpus', 'minimum_memory_mb', 'current_memory_mb',
                'maximum_memory_mb', 'persisted', 'requested_vcpus',
                'requested_memory_mb') + tuple(
                    column for column, _path in OBSERVED_COLUMNS) + (
                'last_request_id', 'last_status', 'last_message',
                'allocation_stale')
# The answer to a dry run, per value asked: (API field, column prefix).
DRY_RUN_VALUES = (('current_vcpus', 'vcpus'),
                  ('current_memory_mb', 'memory_mb'))
DRY_RUN_FIELDS = ('requested', 'current', 'applicable', 'reasons', 'notes')


def _positive_int(text):
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            _('%s is not a positive integer') % text)
    return value


def _error_message(response):
    """The message of a Nova fault body, else the body's text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and len(body) == 1:
        fault = next(iter(body.values()))
        if isinstance(fault, dict) and fault.get('message'):
            return fault['message']
    return response.text or response.reason


def _call(compute, method, url, **kwargs):
    """Send a request through the compute proxy; return the JSON body.

    An HTTP error becomes a CommandError with the API's message.
    """
    response = getattr(compute, method)(url, **kwargs)
    if response.status_code >= 400:
        raise exceptions.CommandError(_('%(message)s (HTTP %(code)s)') % {
            'message': _error_message(response),
            'code': response.status_code})
    return response.json()


def find_server(compute, name_or_id):
    """The server of that name or ID, or a CommandError."""
    try:
        return compute.find_server(name_or_id, ignore_missing=False)
    except sdk_exceptions.SDKException as e:
        raise exceptions.CommandError(str(e))


def get_adjustment(compute, server_id):
    return _call(compute, 'get', URL % server_id)['adjustment']


def post_adjustment(compute, server_id, body):
    return _call(compute, 'post', URL % server_id, json=body)['adjustment']


def post_dry_run(compute, server_id, body):
    """The answer to a dry run (body has "dry_run": true)."""
    return _call(compute, 'post', URL % server_id, json=body)['dry_run']


def build_body(vcpus, memory_mb, persist, force=False, dry_run=False):
    """The POST body; force and dry_run are sent only when true.

    (A server older than them refuses fields it does not know.)
    """
    body = {'persist': persist}
    if vcpus is not None:
        body['current_vcpus'] = vcpus
    if memory_mb is not None:
        body['current_memory_mb'] = memory_mb
    if force:
        body['force'] = True
    if dry_run:
        body['dry_run'] = True
    return body


def flatten_shown(shown):
    """The GET body with its observed values as flat columns.

    A server that does not report them (older nova-xloud) shows none.
    """
    flat = dict(shown)
    observed = flat.pop('observed', None) or {}
    for column, (kind, field) in OBSERVED_COLUMNS:
        flat[column] = (observed.get(kind) or {}).get(field)
    return flat


def _lines(values):
    return '\n'.join(values or ())


def dry_run_view(answer):
    """(columns, values) of a dry-run answer: per value asked, its fields."""
    columns = ['server_id', 'applicable']
    values = [answer.get('server_id'), answer.get('applicable')]
    for field, prefix in DRY_RUN_VALUES:
        if field not in answer:
            continue
        for name in DRY_RUN_FIELDS:
            columns.append('%s_%s' % (prefix, name))
            value = answer[field].get(name)
            values.append(_lines(value) if name in ('reasons', 'notes')
                          else value)
    return tuple(columns), tuple(values)


def _show(compute, server_id):
    shown = flatten_shown(get_adjustment(compute, server_id))
    return SHOW_COLUMNS, utils.get_dict_properties(shown, SHOW_COLUMNS)


def get_event(compute, server_id, request_id):
    """The compute_xloud_adjust event of the action, or None (not yet)."""
    action = _call(compute, 'get', ACTION_URL % (server_id, request_id),
                   microversion=EVENT_DETAILS_MICROVERSION)
    for event in action['instanceAction'].get('events') or ():
        if event.get('event') == EVENT:
            return event
    return None


def _failure_message(compute, server_id, request_id, event):
    """The error of a failed adjustment.

    The event details, else the last message of the adjustment record
    (the details of an event are shown to admins only).
    """
    if event.get('details'):
        return event['details']
    shown = get_adjustment(compute, server_id)
    if shown['last_request_id'] == request_id and shown['last_message']:
        return shown['last_message']
    return _('no details available')


def _progress(stream, server_id, state, elapsed):
    stream.write(_('\rAdjusting server %(server)s: %(state)s '
                   '(%(elapsed)ds)') % {'server': server_id, 'state': state,
                                        'elapsed': elapsed})
    stream.flush()


def wait_for_adjustment(compute, server_id, request_id,
                        timeout=WAIT_TIMEOUT, interval=WAIT_INTERVAL,
                        stream=None):
    """Poll the instance action until its event ends.

    Writes a progress line to stream (stderr); raises CommandError when
    the adjustment failed or did not end within timeout seconds.
    """
    stream = stream or sys.stderr
    start = time.monotonic()
    while True:
        event = get_event(compute, server_id, request_id)
        result = (event or {}).get('result')
        elapsed = time.monotonic() - start
        _progress(stream, server_id, (result or 'pending').lower(), elapsed)
        if result:
            stream.write('\n')
            if not result.endswith('Success'):
                raise exceptions.CommandError(_(
                    'Adjustment %(request)s of server %(server)s failed: '
                    '%(message)s') % {
                        'request': request_id, 'server': server_id,
                        'message': _failure_message(
                            compute, server_id, request_id, event)})
            return event
        if elapsed >= timeout:
            stream.write('\n')
            raise exceptions.CommandError(_(
                'Adjustment %(request)s of server %(server)s did not end '
                'within %(timeout)d seconds.') % {
                    'request': request_id, 'server': server_id,
                    'timeout': timeout})
        time.sleep(interval)


def _add_server_argument(parser):
    parser.add_argument(
        'server',
        metavar='<server>',
        help=_('Server to adjust (name or ID)'))


class SetAdjustment(command.ShowOne):
    _description = _(
        'Change the vCPUs and/or memory of a server without a reboot, '
        'within the range of its flavor')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_server_argument(parser)
        parser.add_argument(
            '--vcpus',
            metavar='<count>',
            type=_positive_int,
            help=_('Number of vCPUs the server has from now on'))
        parser.add_argument(
            '--memory',
            metavar='<size-mb>',
            type=_positive_int,
            help=_('Memory (MiB) the server has from now on'))
        parser.add_argument(
            '--no-persist',
            dest='persist',
            action='store_false',
            default=True,
            help=_('Change the running guest only: its next hard reboot or '
                   'start returns to the last persisted values'))
        parser.add_argument(
            '--force',
            action='store_true',
            help=_('Lower the memory even when the guest\'s balloon '
                   'statistics show it uses more than the new value leaves '
                   '(or show nothing): the guest may swap or kill '
                   'processes'))
        parser.add_argument(
            '--dry-run',
            action='store_true',
            help=_('Change nothing: show for each value whether it can be '
                   'applied live now, every reason it cannot, and notes '
                   '(with --force, as a forced adjustment would be '
                   'checked)'))
        parser.add_argument(
            '--wait',
            action='store_true',
            help=_('Wait until the compute has made the change; show the '
                   'adjustment then, or fail with the error'))
        parser.add_argument(
            '--wait-timeout',
            metavar='<seconds>',
            type=_positive_int,
            default=WAIT_TIMEOUT,
            help=_('With --wait, give up after this many seconds '
                   '(default: %d)') % WAIT_TIMEOUT)
        self._parser = parser
        return parser

    def take_action(self, parsed_args):
        if parsed_args.vcpus is None and parsed_args.memory is None:
            self._parser.error(
                _('at least one of --vcpus and --memory is required'))
        if parsed_args.dry_run and parsed_args.wait:
            self._parser.error(
                _('--wait cannot be used with --dry-run: a dry run changes '
                  'nothing'))
        compute = self.app.client_manager.xloud
        server = find_server(compute, parsed_args.server)
        body = build_body(parsed_args.vcpus, parsed_args.memory,
                          parsed_args.persist, force=parsed_args.force,
                          dry_run=parsed_args.dry_run)
        if parsed_args.dry_run:
            return dry_run_view(post_dry_run(compute, server.id, body))
        adjustment = post_adjustment(compute, server.id, body)
        if not parsed_args.wait:
            return SET_COLUMNS, utils.get_dict_properties(adjustment,
                                                          SET_COLUMNS)
        wait_for_adjustment(compute, server.id, adjustment['request_id'],
                            timeout=parsed_args.wait_timeout,
                            stream=self.app.stderr)
        return _show(compute, server.id)


class ShowAdjustment(command.ShowOne):
    _description = _(
        'Show the vCPU and memory ranges of a server, what was last '
        'requested, what it has (current) and what its guest showed '
        '(observed), and its last adjustment')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_server_argument(parser)
        return parser

    def take_action(self, parsed_args):
        compute = self.app.client_manager.xloud
        server = find_server(compute, parsed_args.server)
        return _show(compute, server.id)
