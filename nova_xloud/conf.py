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

"""Configuration options of nova-xloud, all in the ``[xloud]`` group."""

from oslo_config import cfg

import nova.conf

xloud_group = cfg.OptGroup(
    'xloud',
    title='nova-xloud options',
    help='Options of the nova-xloud live vertical scaling extension.')

xloud_opts = [
    cfg.BoolOpt(
        'claim_minimum_in_placement',
        default=True,
        help="""
Claim the flavor minimum in placement.

When a flavor has the ``minimum_cpu`` or ``minimum_memory`` extra spec,
the server is scheduled on, and its placement allocation claims, that
minimum as VCPU and MEMORY_MB, which packs more servers on a host. Set
to False to claim the flavor's ``vcpus`` and ``ram`` instead, leaving no
room to overcommit through the minimum; the guest still boots with the
minimum. Set the same value on every nova-api, nova-scheduler and
nova-conductor service and where ``nova-manage placement
heal_allocations`` runs, since each of them computes allocations.
"""),
    cfg.IntOpt(
        'min_memory_mb',
        default=256,
        min=1,
        help="""
Smallest memory (MiB) the live adjust API accepts for a server whose flavor
has no ``minimum_memory`` extra spec (capped at the flavor's ram). Set it on
nova-api and nova-compute.
"""),
    cfg.IntOpt(
        'describe_timeout',
        default=10,
        min=1,
        help="""
Seconds nova-api waits for a server's compute service to answer the live
adjust probe (which tells whether it runs nova-xloud and has a usable memory
balloon) before it refuses the adjustment with HTTP 409.
"""),
    cfg.IntOpt(
        'compute_info_cache_seconds',
        default=60,
        min=0,
        help="""
Seconds nova-api keeps a compute's answer to the live adjust probe.

What a compute supports (whether it runs nova-xloud, whether its guests
have a usable memory balloon) changes only when it restarts, so nova-api
asks each compute once and reuses the answer for this long instead of
making an RPC round trip per adjustment. Whether the compute service is up
is still read on every request, so a down compute is refused at once. A
compute restarted without nova-xloud, or with a different balloon setting,
is seen once the answer expires; an adjustment accepted for it before then
stays ``pending`` (nothing on that compute records its result). 0 asks on
every request. Set it on nova-api.
"""),
    cfg.BoolOpt(
        'repair_drift',
        default=True,
        help="""
Repair drift between adjusted servers and their records.

When enabled, nova-compute checks, when it starts and then every
``drift_repair_interval`` seconds, each ACTIVE server on its host whose
flavor has ``minimum_cpu`` or ``minimum_memory`` or that was adjusted live:
the vCPUs and balloon target the guest has (as libvirt reports them live)
against the server's live adjust records and the VCPU / MEMORY_MB of its
placement allocation. Where they differ (an update that failed half-way,
``virsh setvcpus`` or ``virsh setmem`` run by hand, a guest that deflated
its balloon), the records and the allocation are set to what the guest has;
each repair is logged and notified (``xloud_adjust.update``). The guest is
never changed. Set it on nova-compute.
"""),
    cfg.IntOpt(
        'drift_repair_interval',
        default=300,
        min=1,
        help="""
Seconds between two drift repair runs of nova-compute (see
``repair_drift``). The first run happens when nova-compute starts its
periodic tasks. Read when nova-compute starts.
"""),
    cfg.IntOpt(
        'lost_adjustment_timeout',
        default=600,
        min=0,
        help="""
Seconds after which drift repair takes a pending adjustment as lost.

An adjustment is ``pending`` from the API's answer until nova-compute
records its result. If nova-compute never does (the RPC cast was lost, or
nova-compute stopped before it got to it), the drift repair of the
server's host ends it in ``error`` once its instance action is older than
this, then sets the records and the allocation to what the guest has, so
that an allocation raised for the adjustment does not stay raised. 0: a
pending adjustment is never taken as lost. Set it on nova-compute.
"""),
    cfg.IntOpt(
        'guest_agent_timeout',
        default=30,
        min=1,
        help="""
Seconds nova-compute waits, after adding vCPUs to a running guest whose
image sets ``hw_qemu_guest_agent=yes``, for the guest to know them all
before the QEMU guest agent brings them online. The adjustment ends in
``error`` when the guest then has fewer online vCPUs than asked. Set it on
nova-compute.
"""),
    cfg.IntOpt(
        'balloon_timeout',
        default=30,
        min=1,
        help="""
Seconds nova-compute waits, after lowering a running guest's memory, for
its balloon to reach the target (``actual`` of the balloon statistics). A
guest that does not give the memory back in time ends the adjustment in
``error`` naming what it has, and the records and the placement allocation
follow what it has. Set it on nova-compute.
"""),
    cfg.IntOpt(
        'memory_shrink_margin_mb',
        default=128,
        min=0,
        help="""
MiB a guest must keep free beyond what it uses for a live memory decrease.

A decrease is refused (HTTP 409 on nova-api, an ``error`` result on
nova-compute) when the target is below what the guest uses (the balloon's
``actual`` less the ``usable`` memory the guest reports) plus this margin,
or when the guest reports no memory use, unless the request says
``"force": true``. Set the same value on nova-api and nova-compute.
"""),
]


def register_opts(conf):
    conf.register_group(xloud_group)
    conf.register_opts(xloud_opts, group=xloud_group)


def list_opts():
    # oslo-config-generator takes (group, options) pairs.
    return [(xloud_group, xloud_opts)]


CONF = nova.conf.CONF
register_opts(CONF)
