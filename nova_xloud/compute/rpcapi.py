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

"""RPC client of the nova-xloud compute endpoint.

The endpoint lives on the compute topic in its own ``xloud`` namespace with
its own version, so Nova's compute RPC API and service version are
untouched. A compute that does not run nova-xloud has no endpoint in that
namespace and answers the probe with UnsupportedVersion.
"""

import threading
import time

import oslo_messaging as messaging

from nova.compute import rpcapi as compute_rpcapi
from nova.objects import base as objects_base
from nova import rpc

from nova_xloud import conf

NAMESPACE = 'xloud'
VERSION = '1.1'


class XloudComputeAPI(object):
    """Client side of the xloud compute RPC API.

    API version history:

    * 1.0 - describe_host, adjust
    * 1.1 - guest_memory; adjust takes force
    """

    def __init__(self):
        self._client = None
        self._described = {}
        self._described_lock = threading.Lock()

    @property
    def client(self):
        # Built on first use: the transport is set up after the API
        # controllers are created.
        if self._client is None:
            target = messaging.Target(topic=compute_rpcapi.RPC_TOPIC,
                                      namespace=NAMESPACE, version='1.0')
            self._client = rpc.get_client(
                target, serializer=objects_base.NovaObjectSerializer())
        return self._client

    def describe_host(self, ctxt, host, timeout=None):
        """Ask a compute what it supports; quick, with a short timeout.

        :returns: dict with 'version', 'driver' and 'memory_balloon'
        :raises: oslo_messaging.MessagingTimeout, UnsupportedVersion or
            RemoteError when the compute does not run nova-xloud
        """
        cctxt = self.client.prepare(
            server=host, version='1.0',
            timeout=timeout or conf.CONF.xloud.describe_timeout)
        return cctxt.call(ctxt, 'describe_host')

    def describe_host_cached(self, ctxt, host):
        """describe_host, answered from what the host said lately.

        Kept ``[xloud] compute_info_cache_seconds``; failures are not
        kept, so a compute without nova-xloud is asked every time.
        """
        keep = conf.CONF.xloud.compute_info_cache_seconds
        now = time.monotonic()
        with self._described_lock:
            told = self._described.get(host)
        if keep and told is not None and now - told[0] < keep:
            return told[1]
        info = self.describe_host(ctxt, host)
        with self._described_lock:
            self._described[host] = (now, info)
        return info

    def guest_memory(self, ctxt, instance):
        """Ask the compute what the guest's balloon statistics say.

        :returns: a dict of records.ObservedMemory's fields
        :raises: what describe_host raises; UnsupportedVersion from a
            compute of nova-xloud 1.0
        """
        cctxt = self.client.prepare(
            server=instance.host, version='1.1',
            timeout=conf.CONF.xloud.describe_timeout)
        return cctxt.call(ctxt, 'guest_memory', instance=instance)

    def adjust(self, ctxt, instance, vcpus, memory_mb, persist, sequence,
               force=False):
        """Cast an adjustment to the instance's compute.

        Sent as 1.0 unless forced, so that a compute not upgraded yet
        still takes it.
        """
        kwargs = {'force': True} if force else {}
        cctxt = self.client.prepare(server=instance.host,
                                    version='1.1' if force else '1.0')
        cctxt.cast(ctxt, 'adjust', instance=instance, vcpus=vcpus,
                   memory_mb=memory_mb, persist=persist, sequence=sequence,
                   **kwargs)
