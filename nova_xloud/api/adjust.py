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

POST checks the request, the server and its compute, raises the placement
allocation for an increase, starts the ``xloud-adjust`` instance action,
takes the next sequence number and marks the request pending in one atomic
write of the records (nova_xloud.store) and casts the adjustment to the
compute; GET shows the ranges, the current values and the last adjustment.
"""

import re

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
from nova_xloud import policies
from nova_xloud import records
from nova_xloud import store

LOG = logging.getLogger(__name__)

_FIELDS = (('current_vcpus', 'vcpus'), ('current_memory_mb', 'memory_mb'))
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
        persist = _persist(body)
        _check_range(instance.flavor, wanted)
        self._check_server(instance, persist)
        if 'vcpus' in wanted and records.vcpus_unsettled(instance):
            raise _conflict(compute_adjust.UNSETTLED_MESSAGE + '.')
        self._check_compute(context, instance, 'memory_mb' in wanted)
        # The instance's context targets its cell database.
        cell_context = instance._context
        if compute_adjust.increases(records.current(instance), **wanted):
            _raise_allocation(cell_context, instance, wanted)

        objects.InstanceAction.action_start(
            context, instance.uuid, compute_adjust.ACTION, want_result=False)
        sequence, now = store.update(cell_context, instance, _start,
                                     context.request_id)
        self._cast(context, cell_context, instance, wanted, persist,
                   sequence)
        return {'adjustment': {
            'server_id': instance.uuid,
            'request_id': context.request_id,
            'current_vcpus': wanted.get('vcpus', now.vcpus),
            'current_memory_mb': wanted.get('memory_mb', now.memory_mb),
            'persist': persist,
        }}

    def _cast(self, context, cell_context, instance, wanted, persist,
              sequence):
        try:
            self.rpcapi.adjust(context, instance, wanted.get('vcpus'),
                               wanted.get('memory_mb'), persist, sequence)
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
        if instance.locked:
            raise _conflict(_('Server %s is locked.') % instance.uuid)
        if instance.task_state is not None:
            raise _conflict(_('Server %(uuid)s has a task in progress: '
                              '%(task)s.') % {'uuid': instance.uuid,
                                              'task': instance.task_state})
        if instance.vm_state == vm_states.STOPPED and not persist:
            raise _conflict(_('Server %s is stopped: only a persisted '
                              'adjustment (persist: true) applies to a '
                              'stopped server.') % instance.uuid)
        if instance.vm_state not in (vm_states.ACTIVE, vm_states.STOPPED):
            raise _conflict(_('Server %(uuid)s is in state %(state)s; it '
                              'must be ACTIVE or SHUTOFF.') % {
                'uuid': instance.uuid,
                'state': common.status_from_state(
                    instance.vm_state, instance.task_state)})
        if not instance.host:
            raise _conflict(_('Server %s is not on a host.') % instance.uuid)

    def _check_compute(self, context, instance, memory):
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
        if memory and not info.get('memory_balloon'):
            raise _conflict(_('The memory of servers on host %s cannot be '
                              'changed: guests there have no usable memory '
                              'balloon.') % host)


def _start(view, request_id):
    return records.start_adjustment(view, request_id), records.current(view)


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


def _persist(body):
    persist = body.get('persist', True)
    if not isinstance(persist, bool):
        raise _invalid('persist', persist, _('It must be true or false.'))
    return persist


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
    }}
