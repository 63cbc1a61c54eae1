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

"""OpenStackClient plugin of nova-xloud: the ``server adjust`` commands.

Registered on the ``openstack.cli.extension`` entry point; the commands
are on ``openstack.xloud.v1``. They call the compute API through the
openstacksdk compute proxy of OSC's connection, so authentication, the
endpoint and microversions are handled as for OSC's own server commands.
"""

import logging

from osc_lib import utils

LOG = logging.getLogger(__name__)

DEFAULT_API_VERSION = '1'
API_VERSION_OPTION = 'os_xloud_api_version'
API_NAME = 'xloud'
API_VERSIONS = {
    '1': 'openstack.compute.v2._proxy.Proxy',
}


def make_client(instance):
    """Return the client of the commands: the SDK compute proxy."""
    LOG.debug('Using the compute proxy of the SDK connection for xloud')
    return instance.sdk_connection.compute


def build_option_parser(parser):
    """Add the global option of the plugin to OSC's parser."""
    parser.add_argument(
        '--os-xloud-api-version',
        metavar='<xloud-api-version>',
        default=utils.env('OS_XLOUD_API_VERSION',
                          default=DEFAULT_API_VERSION),
        help='nova-xloud command version, default=%s '
             '(Env: OS_XLOUD_API_VERSION)' % DEFAULT_API_VERSION)
    return parser
