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

"""The network service of the real cloud: a stand-in, on purpose.

Servers of this tier boot with ``"networks": "none"``; Nova then only
lists (ports, networks, security groups, floating IPs, extensions) to
show, reboot, stop, start and delete them, and every list is empty. A
real neutron-server would need its own database migrations, an ML2
configuration and agents, none of which such a server uses, and would
add minutes to a tier that must finish in twelve. The stand-in answers
exactly those lists, is registered in Keystone's catalog as the
``network`` service like a real one, logs every request, and answers 404
to anything else, so a Nova call it does not expect shows in its log.
"""

import json

_EMPTY_LISTS = {
    'ports': 'ports',
    'networks': 'networks',
    'subnets': 'subnets',
    'security-groups': 'security_groups',
    'floatingips': 'floatingips',
    'extensions': 'extensions',
    'qos/policies': 'policies',
}


def _respond(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(status, [('Content-Type', 'application/json'),
                            ('Content-Length', str(len(data)))])
    return [data]


def application(environ, start_response):
    path = environ.get('PATH_INFO', '').rstrip('/')
    method = environ.get('REQUEST_METHOD')
    print('%s %s?%s' % (method, path, environ.get('QUERY_STRING', '')),
          flush=True)
    if method == 'GET' and path in ('', '/v2.0'):
        return _respond(start_response, '200 OK', {'versions': []})
    if method == 'GET' and path.startswith('/v2.0/'):
        resource = path[len('/v2.0/'):]
        if resource in _EMPTY_LISTS:
            return _respond(start_response, '200 OK',
                            {_EMPTY_LISTS[resource]: []})
    return _respond(start_response, '404 Not Found',
                    {'NeutronError': {'type': 'HTTPNotFound',
                                      'message': 'not in the stand-in: %s %s'
                                      % (method, path), 'detail': ''}})
