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

"""Atomic writes of the live adjust records, key by key.

Instance.save() writes an instance's whole system_metadata, so writers
working on copies of it lose each other's changes. The ``xloud_*`` records
are written here instead, as a compare-and-swap on all of them:

* update() lets a pure function (records.py) change the records as a dict,
  starting from what the caller's instance shows, and asks swap() to write
  only the keys that changed, if the stored records still equal what the
  function saw; when they do not, it runs the function again on the stored
  records that swap() returned, a bounded number of times;
* swap() runs in the instance's cell database in one transaction that
  holds the instance's row (SELECT ... FOR UPDATE), so that writers of one
  server in several processes take turns on MySQL/MariaDB, and writes each
  key conditional on the value it read (a whole-dict Instance.save() by
  Nova in between makes it start again). A lock per server in this process
  serialises its threads, which share one connection on sqlite; different
  servers never wait for each other.

nova-compute has no database access: there swap() runs in nova-conductor,
through the conductor endpoint of nova-xloud (conductor/). A conductor
without it (not upgraded yet) is told apart, logged, and served by a
load-compare-save through Nova's own conductor calls, which is not atomic.

After a write the in-memory instance shows the new values and counts them
as saved, so a later Instance.save() neither rewrites nor deletes them.
"""

import functools

from oslo_concurrency import lockutils
from oslo_db import api as oslo_db_api
from oslo_log import log as logging
from oslo_utils import timeutils
import sqlalchemy as sa

from nova.db.main import api as main_db
from nova.db.main import models
from nova import exception
from nova import objects

from nova_xloud.conductor import rpcapi as conductor_rpcapi
from nova_xloud import records

LOG = logging.getLogger(__name__)

MAX_ATTEMPTS = 10

_RECORDS = models.InstanceSystemMetadata.__table__
_INSTANCES = models.Instance.__table__


class RecordsConflict(exception.NovaException):
    msg_fmt = ("The live adjust records of server %(uuid)s kept changing "
               "during %(attempts)d attempts to write them")


class _Changed(Exception):
    """The stored records are not what the writer saw.

    ``stored`` holds them when this transaction read them, else None.
    """

    def __init__(self, stored=None):
        super(_Changed, self).__init__()
        self.stored = stored


def _lock_name(uuid):
    return 'xloud-records-%s' % uuid


def _select_records(context, uuid):
    query = sa.select(_RECORDS.c.id, _RECORDS.c.key, _RECORDS.c.value).where(
        _RECORDS.c.instance_uuid == uuid,
        _RECORDS.c.deleted == 0,
        _RECORDS.c.key.startswith(records.PREFIX, autoescape=True),
    ).order_by(_RECORDS.c.id)
    rows = {}
    for row in context.session.execute(query):
        rows.setdefault(row.key, (row.id, row.value))
    return rows


def _lock_instance(context, uuid):
    query = sa.select(_INSTANCES.c.id).where(
        _INSTANCES.c.uuid == uuid).with_for_update()
    if context.session.execute(query).first() is None:
        raise exception.InstanceNotFound(instance_id=uuid)


def _insert_if_absent(uuid, key, value, now):
    existing = _RECORDS.alias('existing')
    values = sa.select(
        sa.literal(uuid), sa.literal(key), sa.literal(value),
        sa.literal(now), sa.literal(0),
    ).where(~sa.exists().where(existing.c.instance_uuid == uuid,
                               existing.c.key == key,
                               existing.c.deleted == 0))
    return sa.insert(_RECORDS).from_select(
        ['instance_uuid', 'key', 'value', 'created_at', 'deleted'], values)


def _write_statement(uuid, key, row, value, now):
    if row is None:
        return _insert_if_absent(uuid, key, value, now)
    row_id, old = row
    if value is None:
        # A hard delete, as Nova's own: soft-deleted system_metadata rows
        # would show up beside new ones when a deleted server is read.
        return sa.delete(_RECORDS).where(_RECORDS.c.id == row_id,
                                         _RECORDS.c.value == old)
    return sa.update(_RECORDS).where(
        _RECORDS.c.id == row_id, _RECORDS.c.value == old,
        _RECORDS.c.deleted == 0).values(value=value, updated_at=now)


def _write(context, uuid, rows, changes):
    now = timeutils.utcnow()
    for key in sorted(changes):
        statement = _write_statement(uuid, key, rows.get(key), changes[key],
                                     now)
        if context.session.execute(statement).rowcount != 1:
            # Another writer's whole-dict save landed since the read.
            raise _Changed()


def _changes(old, new):
    """{key: new value or None to delete} for the keys that differ."""
    return {key: new.get(key) for key in set(old) | set(new)
            if old.get(key) != new.get(key)}


def _view(instance, values):
    return records.View(
        values,
        flavor=instance.flavor if instance.obj_attr_is_set('flavor')
        else None,
        old_flavor=instance.old_flavor
        if instance.obj_attr_is_set('old_flavor') else None)


def _records_of(system_metadata):
    return {key: value for key, value in system_metadata.items()
            if key.startswith(records.PREFIX)}


def _in_memory(instance):
    """The records as the caller's instance shows them, as a first guess."""
    if not instance.obj_attr_is_set('system_metadata'):
        return {}
    return _records_of(instance.system_metadata)


def _apply(instance, old, change, args, kwargs):
    """(what change returned, {key: new value or None}) for records old."""
    view = _view(instance, dict(old))
    result = change(view, *args, **kwargs)
    return result, _changes(old, view.system_metadata)


def _show_in_memory(instance, old, changes):
    """Make the instance show the stored records, as saved ones."""
    if not instance.obj_attr_is_set('system_metadata'):
        return
    sysmeta = instance.system_metadata
    orig = getattr(instance, '_orig_system_metadata', None)
    stored = dict(old)
    stored.update(changes)
    for key in set(stored) | {k for k in sysmeta if
                              k.startswith(records.PREFIX)}:
        for values in (sysmeta, orig):
            if values is None:
                continue
            if stored.get(key) is None:
                values.pop(key, None)
            else:
                values[key] = stored[key]


def update(context, instance, change, *args, **kwargs):
    """Apply change(view, *args, **kwargs) to the records atomically.

    :param context: a context targeting the instance's cell (the
        instance's own ``_context`` does)
    :param instance: an Instance; its flavor and old_flavor, when loaded,
        are what ``view.flavor`` and ``view.old_flavor`` show
    :param change: a function of records.py (or any function) changing
        ``view.system_metadata``, a dict of the stored ``xloud_*`` records;
        it may be called more than once and must not have side effects
    :returns: what change returned on the attempt that was stored
    :raises: RecordsConflict when the records kept changing under it;
        InstanceNotFound
    """
    with lockutils.lock(_lock_name(instance.uuid)):
        seen = _in_memory(instance)
        for _attempt in range(MAX_ATTEMPTS):
            result, changes = _apply(instance, seen, change, args, kwargs)
            swapped, stored = _swap_here_or_in_conductor(
                context, instance.uuid, seen, changes)
            if swapped:
                _show_in_memory(instance, seen, changes)
                return result
            LOG.debug('The records of %s were not what this writer saw; '
                      'trying again on the stored ones', instance.uuid)
            seen = stored
    raise RecordsConflict(uuid=instance.uuid, attempts=MAX_ATTEMPTS)


@oslo_db_api.wrap_db_retry(max_retries=5, retry_on_deadlock=True)
@main_db.pick_context_manager_writer
def _swap_once(context, uuid, expected, changes):
    _lock_instance(context, uuid)
    rows = _select_records(context, uuid)
    stored = {key: value for key, (_id, value) in rows.items()}
    if stored != expected:
        raise _Changed(stored)
    _write(context, uuid, rows, changes)


def swap(context, uuid, expected, changes):
    """Write changes if the stored records equal expected, atomically.

    Runs where the database is: nova-api, and nova-conductor on behalf of
    nova-compute (conductor/endpoint.py).

    :param expected: every ``xloud_*`` record, as the writer saw them
    :param changes: {key: new value, or None to delete}
    :returns: (True, None) once written, else (False, the stored records)
    :raises: InstanceNotFound
    """
    try:
        _swap_once(context, uuid, expected, changes)
    except _Changed as e:
        return False, read(context, uuid) if e.stored is None else e.stored
    return True, None


def _database_here():
    """False in nova-compute, which reaches the database through conductor."""
    return not main_db.DISABLE_DB_ACCESS


def _swap_here_or_in_conductor(context, uuid, expected, changes):
    if _database_here():
        return swap(context, uuid, expected, changes)
    try:
        return _conductor_api().swap_records(context, uuid, expected,
                                             changes)
    except Exception as e:
        if not conductor_rpcapi.endpoint_missing(e):
            raise
        LOG.debug('Conductor refused swap_records: %s', e)
        _warn_conductor_without_endpoint()
    return _load_compare_save(context, uuid, expected, changes)


@functools.lru_cache(maxsize=None)
def _conductor_api():
    # Built on first use, once the process has set up its RPC transport.
    return conductor_rpcapi.XloudConductorAPI()


@functools.lru_cache(maxsize=None)
def _warn_conductor_without_endpoint():
    """Logged once per process."""
    LOG.warning('nova-conductor does not run nova-xloud: this compute '
                'writes the live adjust records by loading and saving the '
                'server through Nova\'s conductor calls, which is not '
                'atomic. Install nova-xloud and the patch series on every '
                'nova-conductor.')


def _load_compare_save(context, uuid, expected, changes):
    """swap() through Nova's own conductor calls, for an older conductor.

    Not atomic: a write by another process between the load and the save
    is overwritten.
    """
    fresh = objects.Instance.get_by_uuid(
        context, uuid, expected_attrs=['system_metadata'])
    stored = _records_of(fresh.system_metadata)
    if stored != expected:
        return False, stored
    for key, value in changes.items():
        if value is None:
            fresh.system_metadata.pop(key, None)
        else:
            fresh.system_metadata[key] = value
    if changes:
        fresh.save()
    return True, None


@main_db.pick_context_manager_reader
def _read(context, uuid):
    return {key: value
            for key, (_id, value) in _select_records(context, uuid).items()}


def read(context, uuid):
    """The stored ``xloud_*`` records of a server, as a dict."""
    return _read(context, uuid)


@main_db.pick_context_manager_reader
def uuids_with(context, key):
    """UUIDs of the servers of this cell that have record ``key``."""
    query = sa.select(_RECORDS.c.instance_uuid).where(
        _RECORDS.c.key == key, _RECORDS.c.deleted == 0).distinct()
    return sorted(row.instance_uuid
                  for row in context.session.execute(query))
