"""Versioned notifications of live adjustments, for billing and monitoring.

Sent through Nova's versioned notifier, so ``[notifications]
notification_format`` (``both`` or ``versioned``) and the notifier's
driver and topics apply as for Nova's own notifications. Event types:
``xloud_adjust.update.start`` when the compute starts an adjustment,
``xloud_adjust.update.end`` when it succeeded and
``xloud_adjust.update.error`` (priority ERROR) when it failed; the
publisher is ``nova-compute:<host>``. README documents the payload.

The classes are kept out of ``NovaObjectRegistry.notification_classes``:
Nova's own unit test of its notification objects' hashes registers every
class listed there and fails on any it does not know, so a distribution
running Nova's suite beside nova-xloud would fail. NOTIFICATION_CLASSES is
their list instead, for our own hash check.
"""

from nova.notifications.objects import base as notification
from nova.objects import base as nova_base
from nova.objects import fields

from nova_xloud import records

NOTIFICATION_CLASSES = []


def register_notification(cls):
    """Nova's register_notification, with our list instead of Nova's."""
    # Like Nova's: a notification object is not registered for RPC.
    nova_base.NovaObjectRegistry.register_if(False)(cls)
    NOTIFICATION_CLASSES.append(cls)
    return cls


START = fields.NotificationPhase.START
END = fields.NotificationPhase.END
ERROR = fields.NotificationPhase.ERROR


@register_notification
class XloudAdjustPayload(notification.NotificationPayloadBase):
    # Version 1.0: Initial version
    # Version 1.1: Add observed_vcpus, observed_memory_mb, observed_usable_mb
    VERSION = '1.1'
    fields = {
        'server_id': fields.UUIDField(),
        'project_id': fields.StringField(nullable=True),
        'request_id': fields.StringField(nullable=True),
        'old_vcpus': fields.IntegerField(),
        'old_memory_mb': fields.IntegerField(),
        'new_vcpus': fields.IntegerField(),
        'new_memory_mb': fields.IntegerField(),
        'persist': fields.BooleanField(),
        'message': fields.StringField(nullable=True),
        # What the guest itself showed (records.ObservedVcpus and
        # ObservedMemory); None where it could not be seen.
        'observed_vcpus': fields.IntegerField(nullable=True),
        'observed_memory_mb': fields.IntegerField(nullable=True),
        'observed_usable_mb': fields.IntegerField(nullable=True),
    }

    def __init__(self, **values):
        # No SCHEMA: the payload is filled from values, not Nova objects.
        super().__init__()
        for name, value in values.items():
            setattr(self, name, value)


@register_notification
class XloudAdjustNotification(notification.NotificationBase):
    # Version 1.0: Initial version
    VERSION = '1.0'
    fields = {
        'payload': fields.ObjectField('XloudAdjustPayload'),
    }


def notify(context, host, phase, instance, old, new, persist, message=None):
    """Send one notification; ``old``/``new`` have vcpus and memory_mb.

    ``new`` is what was asked at start and what the guest has at end or
    error; the observed values are the instance's records.
    """
    vcpus = records.observed_vcpus(instance)
    memory = records.observed_memory(instance)
    payload = XloudAdjustPayload(
        server_id=instance.uuid, project_id=instance.project_id,
        request_id=context.request_id, old_vcpus=old.vcpus,
        old_memory_mb=old.memory_mb, new_vcpus=new.vcpus,
        new_memory_mb=new.memory_mb, persist=persist, message=message,
        observed_vcpus=vcpus.online, observed_memory_mb=memory.actual_mb,
        observed_usable_mb=memory.usable_mb)
    XloudAdjustNotification(
        priority=(fields.NotificationPriority.ERROR if phase == ERROR
                  else fields.NotificationPriority.INFO),
        publisher=notification.NotificationPublisher(
            host=host, source=fields.NotificationSource.COMPUTE),
        event_type=notification.EventType(
            object='xloud_adjust', action=fields.NotificationAction.UPDATE,
            phase=phase),
        payload=payload).emit(context)
