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

"""The live adjust API: /os-xloud-adjust/{server_id}.

POST checks the request, the server and its compute (and, for a memory
decrease, asks the compute whether the guest can give the memory back),
raises the placement allocation for an increase, starts the
``xloud-adjust`` instance action, takes the next sequence number and marks
the request pending in one atomic write of the records (nova_xloud.store)
and casts the adjustment to the compute. With ``dry_run`` it runs the same
checks, gathering every reason instead of stopping at the first, and
changes nothing.

GET shows the ranges, what was last requested, what libvirt applied
(current), what the guest itself showed (observed) and the last
adjustment, all from the records: no RPC.
"""

import re

import os_resource_classes as orc
from oslo_log import log as logging
import oslo_messaging as messaging
import webob

from nova.api.openstack import common
from nova.api.openstack import wsgi
from nova.compute import api as compute
from nova.compute import vm_states
from nova import exception
from nova.i18n import _
from nova import objects
from nova import servicegroup

from nova_xloud.api import compat
from nova_xloud.api.schemas import adjust as schema
from nova_xloud.compute import adjust as compute_adjust
from nova_xloud.compute import placement
from nova_xloud.compute import rpcapi
from nova_xloud import conf
from nova_xloud import policies
from nova_xloud import records
from nova_xloud import store

CONF = conf.CONF
LOG = logging.getLogger(__name__)

_FIELDS = (('current_vcpus', 'vcpus'), ('current_memory_mb', 'memory_mb'))
_RESOURCE_CLASSES = {'vcpus': orc.VCPU, 'memory_mb': orc.MEMORY_MB}

_DIGITS = re.compile('[1-9][0-9]{0,9}')


def _conflict(message):
    return webob.exc.HTTPConflict(explanation=message)


@compat.validated
class AdjustController(wsgi.Controller):

    def __init__(self):
        super().__init__()
        self.compute_api = compute.API()
        self.rpcapi = rpcapi.XloudComputeAPI()
        self.servicegroup_api = servicegroup.API()

    def _get_instance(self, context, server_id):
        return common.get_instance(
            self.compute_api, context, server_id,
            expected_attrs=['flavor', 'system_metadata'])

    @wsgi.expected_errors((400, 404))
    @compat.query_schema(schema.show_query)
    @compat.response_body_schema(schema.show_response)
    def show(self, req, server_id):
        context = req.environ['nova.context']
        instance = self._get_instance(context, server_id)
        policies.authorize(context, policies.SHOW, instance)
        return show_view(instance)

    @wsgi.response(202)
    @wsgi.expected_errors((400, 404, 409, 503))
    @compat.request_body_schema(schema.adjust)
    @compat.response_body_schema(schema.adjust_response)
    def adjust(self, req, server_id, body):
        context = req.environ['nova.context']
        instance = self._get_instance(context, server_id)
        policies.authorize(context, policies.UPDATE, instance)

        wanted = _wanted(body)
        persist = _flag(body, 'persist', True)
        force = _flag(body, 'force', False)
        if _flag(body, 'dry_run', False):
            return wsgi.ResponseObject(
                self._dry_run(context, instance, wanted, persist, force),
                code=200)
        _check_range(instance.flavor, wanted)
        self._check_server(instance, persist)
        if 'vcpus' in wanted:
            _check_vcpus_settled(instance)
        info = self._check_compute(context, instance)
        if 'memory_mb' in wanted:
            _check_balloon(instance.host, info)
            if not force:
                self._check_shrink(context, instance, wanted['memory_mb'],
                                   info)
        # The instance's context targets its cell database.
        cell_context = instance._context
        if compute_adjust.increases(records.current(instance), **wanted):
            _raise_allocation(cell_context, instance, wanted)

        objects.InstanceAction.action_start(
            context, instance.uuid, compute_adjust.ACTION, want_result=False)
        sequence, now = store.update(cell_context, instance, _start,
                                     context.request_id, wanted)
        # A compute of nova-xloud 1.0 never checks a shrink, which is what
        # force asks; it would refuse the 1.1 message that carries force.
        self._cast(context, cell_context, instance, wanted, persist,
                   sequence, force and _serves(info, '1.1'))
        return {'adjustment': {
            'server_id': instance.uuid,
            'request_id': context.request_id,
            'current_vcpus': wanted.get('vcpus', now.vcpus),
            'current_memory_mb': wanted.get('memory_mb', now.memory_mb),
            'persist': persist,
        }}

    def _cast(self, context, cell_context, instance, wanted, persist,
              sequence, force):
        try:
            self.rpcapi.adjust(context, instance, wanted.get('vcpus'),
                               wanted.get('memory_mb'), persist, sequence,
                               force=force)
        except messaging.MessagingException as e:
            LOG.warning('Could not cast adjustment %(request)s of %(uuid)s: '
                        '%(error)s', {'request': context.request_id,
                                      'uuid': instance.uuid, 'error': e})
            message = (_('The compute service on host %s could not be '
                         'reached.') % instance.host)
            store.update(cell_context, instance, records.set_result,
                         context.request_id, records.STATUS_ERROR, message)
            _lower_allocation(cell_context, instance)
            raise webob.exc.HTTPServiceUnavailable(explanation=message)

    @staticmethod
    def _check_server(instance, persist):
        problems = _server_problems(instance, persist)
        if problems:
            raise _conflict(problems[0])

    def _check_compute(self, context, instance):
        """What the server's compute supports; 409 if it cannot adjust."""
        host = instance.host
        try:
            service = objects.Service.get_by_compute_host(context, host)
        except exception.ComputeHostNotFound:
            raise _conflict(_('No compute service on host %s.') % host)
        if not self.servicegroup_api.service_is_up(service):
            raise _conflict(_('The compute service on host %s is down.')
                            % host)
        try:
            info = self.rpcapi.describe_host_cached(context, host)
        except messaging.MessagingTimeout:
            raise _conflict(_('The compute service on host %s did not '
                              'answer in time.') % host)
        except (messaging.UnsupportedVersion, messaging.RemoteError,
                messaging.MessagingException) as e:
            LOG.info('Compute %(host)s refused the xloud probe: %(error)s',
                     {'host': host, 'error': e})
            raise _conflict(_('The compute service on host %s does not run '
                              'nova-xloud.') % host)
        if not info.get('live_vcpus', True) and (
                instance.vm_state == vm_states.ACTIVE):
            raise _conflict(_('The compute driver on host %s cannot change '
                              'a running server.') % host)
        return info

    def _check_shrink(self, context, instance, memory_mb, info):
        """409 unless the guest can give memory down to memory_mb."""
        if instance.vm_state != vm_states.ACTIVE or (
                memory_mb >= records.current(instance).memory_mb):
            return
        older = _conflict(_('The compute service on host %s cannot say '
                            'how much memory the guest uses (it runs an '
                            'older nova-xloud). Send "force": true to '
                            'lower it anyway.') % instance.host)
        if not _serves(info, '1.1'):
            raise older
        try:
            stats = self.rpcapi.guest_memory(context, instance)
        except messaging.MessagingTimeout:
            raise _conflict(_('The compute service on host %s did not say '
                              'in time how much memory the guest uses.')
                            % instance.host)
        except messaging.MessagingException as e:
            LOG.info('Compute %(host)s cannot report guest memory: '
                     '%(error)s', {'host': instance.host, 'error': e})
            raise older
        refusal = records.shrink_refusal(
            _observed_memory(stats), memory_mb,
            CONF.xloud.memory_shrink_margin_mb)
        if refusal:
            raise _conflict(_('current_memory_mb %(value)d is not safe: '
                              '%(why)s. Send "force": true to lower it '
                              'anyway.') % {'value': memory_mb,
                                            'why': refusal})

    def _dry_run(self, context, instance, wanted, persist, force):
        """Every reason each wanted value cannot be applied now."""
        general = _server_problems(instance, persist)
        info = {}
        if instance.host:
            try:
                info = self._check_compute(context, instance)
            except webob.exc.HTTPException as e:
                general.append(e.explanation)
        now = records.current(instance)
        answer = {'server_id': instance.uuid}
        for field, name in _FIELDS:
            if name not in wanted:
                continue
            out_of_range = _reasons(_check_range, instance.flavor,
                                    {name: wanted[name]})
            reasons = out_of_range + general
            notes = []
            if name == 'vcpus':
                reasons += _reasons(_check_vcpus_settled, instance)
                if (wanted[name] > now.vcpus and
                        instance.vm_state == vm_states.ACTIVE and
                        not records.has_guest_agent(instance)):
                    notes.append(compute_adjust.ONLINE_THEMSELVES)
            else:
                if info:
                    reasons += _reasons(_check_balloon, instance.host, info)
                if info and not force and not reasons:
                    reasons += _reasons(self._check_shrink, context,
                                        instance, wanted[name], info)
            if not out_of_range:
                reasons += _room_reasons(instance, name, wanted[name], now)
            answer[field] = {'requested': wanted[name],
                             'current': getattr(now, name),
                             'applicable': not reasons,
                             'reasons': reasons, 'notes': notes}
        answer['applicable'] = all(answer[field]['applicable']
                                   for field, name in _FIELDS
                                   if name in wanted)
        return {'dry_run': answer}


def _room_reasons(instance, name, value, now):
    """Why the server's host cannot hold value of name, from placement."""
    if value <= getattr(now, name) or not instance.host:
        return []
    try:
        found = placement.room(instance._context, instance)
    except placement.PlacementError as e:
        return [e.format_message()]
    refusal = placement.room_refusal(found, _RESOURCE_CLASSES[name], value)
    return [_('Host %(host)s cannot hold it: %(why)s.') % {
        'host': instance.host, 'why': refusal}] if refusal else []


def _server_problems(instance, persist):
    """Every reason the server cannot be adjusted now, in order."""
    problems = []
    if instance.locked:
        problems.append(_('Server %s is locked.') % instance.uuid)
    if instance.task_state is not None:
        problems.append(_('Server %(uuid)s has a task in progress: '
                          '%(task)s.') % {'uuid': instance.uuid,
                                          'task': instance.task_state})
    if instance.vm_state == vm_states.STOPPED and not persist:
        problems.append(_('Server %s is stopped: only a persisted '
                          'adjustment (persist: true) applies to a '
                          'stopped server.') % instance.uuid)
    if instance.vm_state not in (vm_states.ACTIVE, vm_states.STOPPED):
        problems.append(_('Server %(uuid)s is in state %(state)s; it '
                          'must be ACTIVE or SHUTOFF.') % {
            'uuid': instance.uuid,
            'state': common.status_from_state(
                instance.vm_state, instance.task_state)})
    if not instance.host:
        problems.append(_('Server %s is not on a host.') % instance.uuid)
    return problems


def _reasons(check, *args):
    """The explanation of the HTTP error check(*args) raises, as a list."""
    try:
        check(*args)
    except webob.exc.HTTPException as e:
        return [e.explanation]
    return []


def _check_vcpus_settled(instance):
    if records.vcpus_unsettled(instance):
        raise _conflict(compute_adjust.UNSETTLED_MESSAGE + '.')


def _check_balloon(host, info):
    if not info.get('memory_balloon'):
        raise _conflict(_('The memory of servers on host %s cannot be '
                          'changed: guests there have no usable memory '
                          'balloon.') % host)


def _serves(info, version):
    """Whether a compute's describe_host answer says it serves version."""
    def parts(text):
        return tuple(int(part) for part in text.split('.'))
    served = parts(str(info.get('version', '1.0')))
    wanted = parts(version)
    return served[0] == wanted[0] and served[1:] >= wanted[1:]


def _observed_memory(stats):
    return records.ObservedMemory(
        **{name: stats.get(name) for name in records.ObservedMemory._fields})


def _start(view, request_id, wanted):
    return (records.start_adjustment(view, request_id, **wanted),
            records.current(view))


def _raise_allocation(context, instance, wanted):
    try:
        placement.set_amounts(context, instance, only_increase=True,
                              **wanted)
    except placement.PlacementUnavailable as e:
        raise webob.exc.HTTPServiceUnavailable(explanation=e.format_message())
    except placement.PlacementError as e:
        raise _conflict(e.format_message())


def _lower_allocation(context, instance):
    now = records.current(instance)
    try:
        placement.set_amounts(context, instance, vcpus=now.vcpus,
                              memory_mb=now.memory_mb)
    except placement.PlacementError as e:
        LOG.warning('Could not set the allocation of %(uuid)s back: '
                    '%(error)s', {'uuid': instance.uuid,
                                  'error': e.format_message()})


def _invalid(field, value, reason):
    return webob.exc.HTTPBadRequest(explanation=_(
        'Invalid input for field/attribute %(field)s. Value: %(value)r. '
        '%(reason)s') % {'field': field, 'value': value, 'reason': reason})


def _amount(field, value):
    """The whole number a JSON integer or a string of digits gives.

    Checked again here whatever the release's validator lets through:
    newer ones count 2.0 as an integer.
    """
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise _invalid(field, value, _(
        'It must be a whole number: a JSON integer or a string of ASCII '
        'digits with no sign, space or leading zero.'))


def _wanted(body):
    wanted = {name: _amount(field, body[field]) for field, name in _FIELDS
              if field in body}
    if not wanted:
        raise webob.exc.HTTPBadRequest(explanation=_(
            'At least one of current_vcpus and current_memory_mb is '
            'required.'))
    return wanted


def _flag(body, field, default):
    value = body.get(field, default)
    if not isinstance(value, bool):
        raise _invalid(field, value, _('It must be true or false.'))
    return value


def _check_range(flavor, wanted):
    lim = records.limits(flavor)
    for field, name in _FIELDS:
        if name not in wanted:
            continue
        rng = getattr(lim, name)
        value = wanted[name]
        if not rng.minimum <= value <= rng.maximum:
            raise webob.exc.HTTPBadRequest(explanation=_(
                'Invalid %(field)s %(value)d: it must be from %(min)d to '
                '%(max)d for flavor %(flavor)s.') % {
                    'field': field, 'value': value, 'min': rng.minimum,
                    'max': rng.maximum, 'flavor': flavor.flavorid})


def show_view(instance):
    flavor = instance.flavor
    lim = records.limits(flavor)
    now = records.current(instance, flavor)
    last = records.last(instance)
    requested = records.requested(instance)
    return {'adjustment': {
        'server_id': instance.uuid,
        'minimum_vcpus': lim.vcpus.minimum,
        'current_vcpus': now.vcpus,
        'maximum_vcpus': lim.vcpus.maximum,
        'minimum_memory_mb': lim.memory_mb.minimum,
        'current_memory_mb': now.memory_mb,
        'maximum_memory_mb': lim.memory_mb.maximum,
        'persisted': records.is_persisted(instance, flavor),
        'last_request_id': last.request_id,
        'last_status': last.status,
        'last_message': last.message,
        'requested_vcpus': requested.vcpus,
        'requested_memory_mb': requested.memory_mb,
        'allocation_stale': records.allocation_stale(instance),
        'observed': {
            'vcpus': records.observed_vcpus(instance)._asdict(),
            'memory': records.observed_memory(instance)._asdict(),
        },
    }}
